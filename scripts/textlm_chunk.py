import sys

sys.stderr = open(snakemake.log[0], "w")
from omicslm.io.logs import setup_logging
from omicslm.textlm.chunking import chunk_corpus

setup_logging()
chunk_corpus(snakemake.input.tokenized, snakemake.output.chunks, block_size=snakemake.params.block_size,
             batch_rows=snakemake.params.batch_rows)
