import sys

sys.stderr = open(snakemake.log[0], "w")  # deleted by Snakemake before a rerun; progress lives in checkpoints
from pathlib import Path

from omicslm.io.logs import setup_logging
from omicslm.scrna.train import train_model

setup_logging()
p = snakemake.params
train_model(snakemake.input.tokens, Path(snakemake.output.best).parent, work_dir=p.work_dir,
            name=snakemake.wildcards.scm, threads=snakemake.threads, **p.options)
