import sys

sys.stderr = open(snakemake.log[0], "w")
from omicslm.io.logs import setup_logging
from omicslm.impute.targets import targets_array_sites

setup_logging()
targets_array_sites(snakemake.input.h5, snakemake.input.targets, snakemake.output.tsv)
