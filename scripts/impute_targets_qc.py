import sys

sys.stderr = open(snakemake.log[0], "w")
from omicslm.io.logs import setup_logging
from omicslm.impute.target_qc import qc_targets

setup_logging()
i, o = snakemake.input, snakemake.output
qc_targets(i.targets, i.ref, o.vcf, o.tsv, chrom=snakemake.wildcards.chrom, **snakemake.params.qc)
