import sys

sys.stderr = open(snakemake.log[0], "w")
from omicslm.io.logs import setup_logging
from omicslm.impute.ragbert.windows import write_windows

setup_logging()
write_windows(snakemake.input.h5, snakemake.output.tsv, sites=snakemake.params.sites, overlap=snakemake.params.overlap)
