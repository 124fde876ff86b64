import sys

sys.stderr = open(snakemake.log[0], "w")
from omicslm.io.logs import setup_logging
from omicslm.textlm.chunking import tokenize_corpus

setup_logging()
tokenize_corpus(snakemake.input.corpus, snakemake.input.tokenizer, snakemake.output.tokenized,
                num_proc=snakemake.threads, batch_rows=snakemake.params.batch_rows)
