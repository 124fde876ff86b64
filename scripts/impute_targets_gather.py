import sys

sys.stderr = open(snakemake.log[0], "w")
from omicslm.io.logs import setup_logging
from omicslm.impute.chunks import gather_cores

setup_logging()
gather_cores(list(snakemake.input.cores), snakemake.output.vcf)
