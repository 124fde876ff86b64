import sys

sys.stderr = open(snakemake.log[0], "w")
from omicslm.io.logs import setup_logging
from omicslm.scrna.tokenize import tokenize

setup_logging()
p = snakemake.params
tokenize(snakemake.input.h5ad, snakemake.output.tokens, binning=p.binning, split=p.split, **p.tokenize)
