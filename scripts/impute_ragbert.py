import sys

sys.stderr = open(snakemake.log[0], "w")
from omicslm.io.logs import setup_logging
from omicslm.impute.ragbert.predict import impute_ragbert

setup_logging()
i, o = snakemake.input, snakemake.output
impute_ragbert(i.h5, i.split, i.target, i.windows, i.best, o.vcf, o.runtime, method=snakemake.wildcards.variant,
               batch_size=snakemake.params.batch_size, threads=snakemake.threads, device=snakemake.params.device,
               train_runtime_json=i.train_runtime, genetic_map=i.gmap or None,
               cpu_bf16=snakemake.params.cpu_bf16, skip_confident=snakemake.params.skip_confident)
