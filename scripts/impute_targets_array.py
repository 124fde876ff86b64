import sys

sys.stderr = open(snakemake.log[0], "w")
from omicslm.io.logs import setup_logging
from omicslm.impute.targets import thin_to_array

setup_logging()
thin_to_array(snakemake.input.targets, snakemake.input.ref, snakemake.output.vcf, chrom=snakemake.wildcards.chrom,
              **snakemake.params.array_sites)
