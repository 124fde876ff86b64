import sys

sys.stderr = open(snakemake.log[0], "w")
from omicslm.io.logs import setup_logging
from omicslm.crispr.kmers import extract_mers

setup_logging()
extract_mers(snakemake.input.fasta, snakemake.output.mer23, snakemake.output.mer30,
             on_bad_record=snakemake.params.on_bad_record)
