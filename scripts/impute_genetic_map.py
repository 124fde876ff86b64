import sys

sys.stderr = open(snakemake.log[0], "w")
from omicslm.io.logs import setup_logging
from omicslm.impute.baselines import convert_genetic_map
from omicslm.impute.layout import read_panel

setup_logging()
contig = read_panel(snakemake.input.h5, haplotypes=False).contig
convert_genetic_map(snakemake.input.gmap, snakemake.output.plink, contig=contig)
