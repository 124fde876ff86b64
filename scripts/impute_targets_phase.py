import sys

sys.stderr = open(snakemake.log[0], "w")
from omicslm.io.logs import setup_logging
from omicslm.impute.phasing import phase_targets

setup_logging()
i, p = snakemake.input, snakemake.params
phase_targets(i.targets, i.ref, snakemake.output.vcf, genetic_map=i.gmap or None, threads=snakemake.threads,
              mem_gb=p.mem_gb, seed=p.seed, ne=p.ne)
