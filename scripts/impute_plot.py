import sys

sys.stderr = open(snakemake.log[0], "w")
from omicslm.io.logs import setup_logging
from omicslm.impute.plot import plot_r2_by_maf

setup_logging()
plot_r2_by_maf(snakemake.input.tsv, snakemake.output[0])
