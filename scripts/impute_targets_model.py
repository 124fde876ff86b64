import sys

sys.stderr = open(snakemake.log[0], "w")
from omicslm.io.logs import setup_logging
from omicslm.impute.ragbert.predict import impute_ragbert

setup_logging()
i, o, p = snakemake.input, snakemake.output, snakemake.params
impute_ragbert(i.h5, i.split, i.target, i.windows, i.best, o.vcf, o.runtime, method=snakemake.wildcards.tmethod,
               batch_size=p.batch_size, threads=snakemake.threads, device=p.device,
               train_runtime_json=i.train_runtime, genetic_map=i.gmap or None, skip_absent=p.skip_absent, cpu_bf16=p.cpu_bf16,
               skip_confident=p.skip_confident)
