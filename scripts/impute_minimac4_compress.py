import sys

sys.stderr = open(snakemake.log[0], "w")
from omicslm.io.logs import setup_logging
from omicslm.impute.baselines import compress_reference_minimac4

setup_logging()
compress_reference_minimac4(snakemake.input.ref, snakemake.output.msav, threads=snakemake.threads)
