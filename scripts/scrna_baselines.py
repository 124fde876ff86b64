import sys

sys.stderr = open(snakemake.log[0], "w")
from omicslm.io.logs import setup_logging
from omicslm.scrna.evaluate import evaluate_baselines

setup_logging()
p = snakemake.params
evaluate_baselines(dict(zip(p.binnings, snakemake.input.tokens)), snakemake.input.h5ad, snakemake.output.tsv,
                   dataset=snakemake.wildcards.scd, **p.options)
