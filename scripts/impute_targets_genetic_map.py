import sys

sys.stderr = open(snakemake.log[0], "w")
from omicslm.io.logs import setup_logging
from omicslm.impute.baselines import convert_genetic_map

setup_logging()
convert_genetic_map(snakemake.input.gmap, snakemake.output.plink, contig=snakemake.wildcards.chrom)
