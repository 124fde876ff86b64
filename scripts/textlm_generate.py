import sys

sys.stderr = open(snakemake.log[0], "w")
from omicslm.io.logs import setup_logging
from omicslm.textlm.evaluate import write_samples

setup_logging()
p = snakemake.params
write_samples(dict(zip(p.names, zip(snakemake.input.models, p.objectives))), snakemake.output[0],
              threads=snakemake.threads, **p.generate)
