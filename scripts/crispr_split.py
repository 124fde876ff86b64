import sys

sys.stderr = open(snakemake.log[0], "w")
from omicslm.io.logs import setup_logging
from omicslm.crispr.split import split_guides

setup_logging()
s = snakemake.params.split
split_guides(snakemake.input.guides, snakemake.output.split, dev_fraction=s["dev_fraction"],
             test_fraction=s["test_fraction"], seed=s["seed"])
