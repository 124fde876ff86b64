import sys

sys.stderr = open(snakemake.log[0], "w")  # deleted by Snakemake before a rerun; progress lives in checkpoints
from pathlib import Path

from omicslm.io.logs import setup_logging
from omicslm.train.launch import call

setup_logging()
i, p = snakemake.input, snakemake.params
# resources.gpu > 1: torchrun, one process per GPU; Trainer sees its environment and trains with DDP
call("omicslm.textlm.train:train_lm", i.chunks, i.tokenizer, str(Path(snakemake.output.model).parent),
     work_dir=p.work_dir, objective=p.spec["objective"], model=p.spec.get("config"), training=p.training,
     mlm_probability=p.mlm_probability, max_eval_blocks=p.max_eval_blocks, threads=snakemake.threads,
     name=snakemake.wildcards.tlm_model, nproc=snakemake.resources.gpu)
