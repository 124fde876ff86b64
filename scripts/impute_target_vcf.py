import sys

sys.stderr = open(snakemake.log[0], "w")
from omicslm.io.logs import setup_logging
from omicslm.impute.split import write_target_vcf

setup_logging()
write_target_vcf(snakemake.input.h5, snakemake.input.split, snakemake.input.array, snakemake.output.vcf,
                 phased=snakemake.params.phased)
