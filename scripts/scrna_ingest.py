import sys

sys.stderr = open(snakemake.log[0], "w")
from omicslm.io.logs import setup_logging
from omicslm.scrna.ingest import ingest

setup_logging()
ingest(snakemake.params.path, snakemake.output.h5ad, snakemake.output.summary, **snakemake.params.options)
