import sys

sys.stderr = open(snakemake.log[0], "w")
from omicslm.io.logs import setup_logging
from omicslm.crispr.evaluate import evaluate_methods

setup_logging()
evaluate_methods(list(snakemake.input.predictions), list(snakemake.input.runtimes), snakemake.output.tsv,
                 external=dict(zip(snakemake.params.external, snakemake.input.external)))
