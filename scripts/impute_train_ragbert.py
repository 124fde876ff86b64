import sys

sys.stderr = open(snakemake.log[0], "a")  # append: a resumed run keeps the killed run's log above it
from omicslm.io.logs import setup_logging
from omicslm.impute.ragbert import train_ragbert

setup_logging()
i, p = snakemake.input, snakemake.params
train_ragbert(i.h5, i.split, i.array, i.windows, out_dir=snakemake.output.best.rsplit("/", 1)[0],
              work_dir=p.work_dir, variant=snakemake.wildcards.variant, model_block=p.model, maf_bins=p.maf_bins,
              threads=snakemake.threads)
