import sys

sys.stderr = open(snakemake.log[0], "w")
from omicslm.io.logs import setup_logging
from omicslm.impute.af_floor import write_af_floor
from omicslm.impute.baselines import write_runtime

setup_logging()
seconds = write_af_floor(snakemake.input.h5, snakemake.input.split, snakemake.output.vcf)
write_runtime(snakemake.output.runtime, method="af_floor", seconds=seconds, threads=1)
