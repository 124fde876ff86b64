import sys

sys.stderr = open(snakemake.log[0], "a")  # append: a resumed run keeps the killed run's log above it
from pathlib import Path

from omicslm.io.logs import setup_logging
from omicslm.scrna.train import train_model

setup_logging()
p = snakemake.params
train_model(snakemake.input.tokens, Path(snakemake.output.best).parent, work_dir=p.work_dir,
            name=snakemake.wildcards.scm, threads=snakemake.threads, **p.options)
