import sys

sys.stderr = open(snakemake.log[0], "w")
from omicslm.io.logs import setup_logging
from omicslm.impute.targets import impute_chunk

setup_logging()
i, p = snakemake.input, snakemake.params
method = snakemake.rule.removeprefix("impute_targets_")  # beagle | minimac4
peer = dict(mem_gb=p.mem_gb, ne=p.ne, seed=p.seed) if method == "beagle" else {}
impute_chunk(method, i.chunks, snakemake.wildcards.chunk, i.target, i.ref if method == "beagle" else i.msav,
             snakemake.output.vcf, genetic_map=i.gmap or None, threads=snakemake.threads,
             tool_log=snakemake.log[0] + ".tool", **peer)
