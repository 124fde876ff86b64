import sys

sys.stderr = open(snakemake.log[0], "a")  # append: a resumed run keeps the killed run's log above it
from omicslm.io.logs import setup_logging
from omicslm.crispr.pretrain import pretrain_encoder

setup_logging()
p = dict(snakemake.params.pretrain)
pretrain_encoder(list(snakemake.input.fastas), snakemake.output.encoder, snakemake.params.work_dir,
                 k=snakemake.params.k, threads=snakemake.threads, **p)
