import sys

sys.stderr = open(snakemake.log[0], "w")
from omicslm.io.logs import setup_logging
from omicslm.impute.split import split_samples

setup_logging()
split_samples(snakemake.input.h5, snakemake.output.tsv, **snakemake.params.split)
