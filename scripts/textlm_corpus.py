import sys

sys.stderr = open(snakemake.log[0], "w")
from pathlib import Path

from omicslm.io.logs import setup_logging
from omicslm.textlm.corpus import build_corpus

setup_logging()
c, texts = snakemake.params.corpus, snakemake.input.texts  # the Shakespeare folder, or the text files
files = sorted(Path(texts).glob("*.txt")) if c["source"] == "shakespeare" else [texts] if isinstance(texts, str) else list(texts)
build_corpus(snakemake.output.corpus, files=files, dataset=c.get("dataset") if c["source"] == "dataset" else None,
             text_column=c.get("text_column", "text"), validation_fraction=c["validation_fraction"], seed=c["seed"],
             encoding_errors=c["encoding_errors"])
