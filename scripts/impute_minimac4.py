import sys

sys.stderr = open(snakemake.log[0], "w")
from omicslm.io.logs import setup_logging
from omicslm.impute.baselines import run_minimac4, write_runtime

setup_logging()
seconds = run_minimac4(snakemake.input.msav, snakemake.input.target, snakemake.output.vcf, threads=snakemake.threads,
                       genetic_map=snakemake.input.gmap or None)
write_runtime(snakemake.output.runtime, method="minimac4", seconds=seconds, threads=snakemake.threads)
