import sys

sys.stderr = open(snakemake.log[0], "w")  # deleted by Snakemake before a rerun; progress lives in checkpoints
from omicslm.io.logs import setup_logging
from omicslm.train.launch import call

setup_logging()
i, p = snakemake.input, snakemake.params
# one model over every chromosome of the reference panel: one input of each kind per chromosome, in the same order
call("omicslm.impute.ragbert.train:train_ragbert", list(i.h5), list(i.split), list(i.array), list(i.windows),
     out_dir=snakemake.output.best.rsplit("/", 1)[0], work_dir=p.work_dir, variant=snakemake.wildcards.variant,
     model_block=p.model, maf_bins=p.maf_bins, threads=snakemake.threads, nproc=snakemake.resources.gpu,
     genetic_map=list(i.gmap) if len(i.gmap) else None)
