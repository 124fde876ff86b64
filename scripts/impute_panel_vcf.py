import sys

sys.stderr = open(snakemake.log[0], "w")
from omicslm.io.logs import setup_logging
from omicslm.impute.split import write_panel_vcf

setup_logging()
write_panel_vcf(snakemake.input.h5, snakemake.input.split, snakemake.output.vcf)
