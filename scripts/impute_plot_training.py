import sys

sys.stderr = open(snakemake.log[0], "w")
from omicslm.io.logs import setup_logging
from omicslm.impute.ragbert.plot import plot_training_curves

setup_logging()
plot_training_curves(dict(zip(snakemake.params.variants, snakemake.input.histories)), snakemake.output[0],
                     metric=snakemake.params.metric)
