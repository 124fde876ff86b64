import sys

sys.stderr = open(snakemake.log[0], "w")  # deleted by Snakemake before a rerun; progress lives in checkpoints
from omicslm.io.logs import setup_logging
from omicslm.train.launch import call

setup_logging()
i, p = snakemake.input, snakemake.params
# resources.gpu > 1: torchrun, one data-parallel process per GPU; else a plain call here
call("omicslm.impute.ragbert.train:train_ragbert", i.h5, i.split, i.array, i.windows,
     out_dir=snakemake.output.best.rsplit("/", 1)[0], work_dir=p.work_dir, variant=snakemake.wildcards.variant,
     model_block=p.model, maf_bins=p.maf_bins, threads=snakemake.threads, nproc=snakemake.resources.gpu,
     genetic_map=i.gmap or None)
