import sys

sys.stderr = open(snakemake.log[0], "w")
from omicslm.io.logs import setup_logging
from omicslm.scrna.fetch import fetch_scanpy_data

setup_logging()
fetch_scanpy_data(snakemake.output.data, requirement=snakemake.params.requirement,
                  sha256=snakemake.params.sha256)
