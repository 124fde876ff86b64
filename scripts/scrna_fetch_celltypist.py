import sys

sys.stderr = open(snakemake.log[0], "w")
from omicslm.io.logs import setup_logging
from omicslm.scrna.fetch import fetch_celltypist_sample

setup_logging()
fetch_celltypist_sample(snakemake.output.csv, requirement=snakemake.params.requirement,
                        sha256=snakemake.params.sha256)
