import sys

sys.stderr = open(snakemake.log[0], "w")
from omicslm.io.logs import setup_logging
from omicslm.impute.baselines import run_beagle, write_runtime

setup_logging()
p = snakemake.params
seconds = run_beagle(snakemake.input.ref, snakemake.input.target, snakemake.output.vcf,
                     genetic_map=snakemake.input.gmap or None, threads=snakemake.threads,
                     mem_gb=p.mem_gb, ne=p.ne, seed=p.seed, log=snakemake.log[0] + ".beagle")
write_runtime(snakemake.output.runtime, method="beagle", seconds=seconds, threads=snakemake.threads)
