import sys

sys.stderr = open(snakemake.log[0], "w")
from omicslm.io.logs import setup_logging
from omicslm.crispr.predict import run_predict

setup_logging()
p = snakemake.params
run_predict(snakemake.input.fasta, dict(zip(p.methods, snakemake.input.predictions)),
            dict(zip(p.methods, snakemake.input.kept)), snakemake.output.tsv, method=p.method)
