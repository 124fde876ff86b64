import sys

sys.stderr = open(snakemake.log[0], "w")
from omicslm.io.logs import setup_logging
from omicslm.crispr.plot import plot_scatter

setup_logging()
plot_scatter(list(snakemake.input.predictions), snakemake.params.methods, snakemake.output[0])
