import sys

sys.stderr = open(snakemake.log[0], "w")
from omicslm.io.logs import setup_logging
from omicslm.scrna.plot import plot_loss_curves

setup_logging()
p = snakemake.params
plot_loss_curves(list(snakemake.input.histories), p.runs, list(snakemake.input.baselines), p.datasets,
                 snakemake.output[0])
