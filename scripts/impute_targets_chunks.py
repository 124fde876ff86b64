import sys

sys.stderr = open(snakemake.log[0], "w")
from omicslm.io.logs import setup_logging
from omicslm.impute.chunks import write_chunks

setup_logging()
c = snakemake.params.chunks
write_chunks(snakemake.input.targets, snakemake.input.ref, snakemake.output.tsv, contig=snakemake.wildcards.chrom,
             size_bp=round(c["size_mb"] * 1e6), flank_bp=round(c["flank_mb"] * 1e6),
             min_target_sites=c["min_target_sites"])
