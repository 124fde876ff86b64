import sys

sys.stderr = open(snakemake.log[0], "w")
from omicslm.io.logs import setup_logging
from omicslm.textlm.plot import plot_loss_curves

setup_logging()
plot_loss_curves(list(snakemake.input.histories), snakemake.params.names, snakemake.output[0])
