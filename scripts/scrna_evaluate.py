import json
import sys

sys.stderr = open(snakemake.log[0], "w")
from omicslm.io.logs import setup_logging
from omicslm.scrna.evaluate import evaluate_model

setup_logging()
i, p = snakemake.input, snakemake.params
evaluate_model(i.tokens, i.best, snakemake.output.tsv, dataset=snakemake.wildcards.scd, name=snakemake.wildcards.scm,
               train_summary=json.loads(open(i.summary).read()), threads=snakemake.threads, **p.options)
