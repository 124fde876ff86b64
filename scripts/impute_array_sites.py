import sys

sys.stderr = open(snakemake.log[0], "w")
from omicslm.io.logs import setup_logging
from omicslm.impute.split import select_array_sites

setup_logging()
select_array_sites(snakemake.input.h5, snakemake.input.split, snakemake.output.tsv, **snakemake.params.array)
