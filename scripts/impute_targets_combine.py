import sys

sys.stderr = open(snakemake.log[0], "w")
from omicslm.io.logs import setup_logging
from omicslm.impute.targets import combine_target_tables

setup_logging()
combine_target_tables(list(snakemake.input), snakemake.output[0])
