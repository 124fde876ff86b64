import sys

sys.stderr = open(snakemake.log[0], "w")
from omicslm.io.logs import setup_logging
from omicslm.impute.simulate import simulate_panel

setup_logging()
simulate_panel(snakemake.output.vcf, snakemake.output.panel, **snakemake.params.sim)
