import sys

sys.stderr = open(snakemake.log[0], "w")  # deleted by Snakemake before a rerun; progress lives in checkpoints
from omicslm.io.logs import setup_logging
from omicslm.train.launch import call

setup_logging()
p, m = snakemake.params, snakemake.params.models
# resources.gpu > 1: torchrun, one data-parallel process per GPU; else a plain call here
call("omicslm.crispr.train:train_method", snakemake.input.dataset, snakemake.output.predictions,
     snakemake.output.runtime, method=snakemake.wildcards.method, spec=p.spec,
     encoder_dir=snakemake.input.encoder or None, encoder_name=p.encoder_name, work_dir=p.work_dir, k=p.k,
     batch_size=m["batch_size"], head_hidden=m["head_hidden"], dropout=m["dropout"], pooling=m["pooling"],
     train=m["train"], threads=snakemake.threads, kept_dir=snakemake.output.kept, nproc=snakemake.resources.gpu)
