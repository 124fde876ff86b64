import sys

sys.stderr = open(snakemake.log[0], "w")
from omicslm.io.logs import setup_logging
from omicslm.scrna.evaluate import combine_eval

setup_logging()
combine_eval(list(snakemake.input), snakemake.output[0])
