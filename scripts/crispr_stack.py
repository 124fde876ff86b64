import sys

sys.stderr = open(snakemake.log[0], "w")
from omicslm.io.logs import setup_logging
from omicslm.crispr.stack import stack_method

setup_logging()
stack_method(list(snakemake.input.predictions), list(snakemake.input.runtimes), snakemake.output.predictions,
             snakemake.output.runtime, method=snakemake.wildcards.method, members=list(snakemake.params.members),
             kept_dir=snakemake.output.kept)
