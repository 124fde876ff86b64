import sys

sys.stderr = open(snakemake.log[0], "w")
from omicslm.io.logs import setup_logging
from omicslm.impute.evaluate import evaluate_method

setup_logging()
e = snakemake.params.evaluate
i = snakemake.input
evaluate_method(i.h5, i.split, i.array, i.vcf, i.runtime, snakemake.output.tsv, method=snakemake.wildcards.method,
                bins=e["maf_bins"], n_boot=e["bootstrap"], seed=e["seed"])
