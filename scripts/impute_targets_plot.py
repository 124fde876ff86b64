import sys

sys.stderr = open(snakemake.log[0], "w")
from omicslm.io.logs import setup_logging
from omicslm.impute.targets_plot import pairs, write_r2_along

setup_logging()
i, p = snakemake.input, snakemake.params
per_chrom = lambda paths: dict(zip(p.chroms, paths))  # truth, ref, qc, chunks: one per chromosome, in order
write_r2_along(pairs(p.methods, p.chroms, i.vcfs), per_chrom(i.truth), per_chrom(i.ref), per_chrom(i.qc),
               per_chrom(i.chunks), snakemake.output.tsv, snakemake.output.png, bin_kb=p.bin_kb,
               min_sites=p.min_sites, snps_only=p.snps_only)
