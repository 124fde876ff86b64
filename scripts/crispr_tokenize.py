import sys

sys.stderr = open(snakemake.log[0], "w")
from omicslm.io.logs import setup_logging
from omicslm.crispr.tokenize import build_dataset

setup_logging()
i = snakemake.input
build_dataset(i.guides, i.split, snakemake.output.dataset, k=snakemake.params.k, energy=i.energy or None)
