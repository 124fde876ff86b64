import sys

sys.stderr = open(snakemake.log[0], "w")
from omicslm.io.logs import setup_logging
from omicslm.crispr.energy import compute_energies

setup_logging()
compute_energies(snakemake.input.guides, snakemake.output.energy)
