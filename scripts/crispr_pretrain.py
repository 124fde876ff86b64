import sys

sys.stderr = open(snakemake.log[0], "w")  # deleted by Snakemake before a rerun; progress lives in checkpoints
from omicslm.io.logs import setup_logging
from omicslm.train.launch import call

setup_logging()
p = dict(snakemake.params.pretrain)
# resources.gpu > 1: torchrun, one data-parallel process per GPU; else a plain call here
call("omicslm.crispr.pretrain:pretrain_encoder", list(snakemake.input.fastas), snakemake.output.encoder,
     snakemake.params.work_dir, k=snakemake.params.k, threads=snakemake.threads, nproc=snakemake.resources.gpu, **p)
