import sys

sys.stderr = open(snakemake.log[0], "w")
from omicslm.io.logs import setup_logging
from omicslm.textlm.tokenizer import make_tokenizers

setup_logging()
t, src = snakemake.params.tokenizer, snakemake.input.get("source") or None  # one path, or none
make_tokenizers(snakemake.output.clm, snakemake.output.mlm, source=t["source"], path=t.get("path"),
                bpe_dir=src if t["source"] == "gpt2" else None, corpus_dir=src if t["source"] == "train" else None,
                vocab_size=t.get("vocab_size", 8000), min_frequency=t.get("min_frequency", 2))
