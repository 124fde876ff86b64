import sys

sys.stderr = open(snakemake.log[0], "w")
from omicslm.io.logs import setup_logging
from omicslm.impute.targets import evaluate_targets

setup_logging()
i, w, e = snakemake.input, snakemake.wildcards, snakemake.params.evaluate
evaluate_targets(i.vcf, i.truth, i.ref, i.qc, snakemake.output.tsv, method=w.tmethod, chrom=w.chrom,
                 bins=e["maf_bins"], n_boot=e["bootstrap"], seed=e["seed"],
                 snps_only=snakemake.params.snps_only)
