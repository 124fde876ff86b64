import sys

sys.stderr = open(snakemake.log[0], "w")
from omicslm.io.logs import setup_logging
from omicslm.impute.ingest import vcf_to_hdf5

setup_logging()
p = snakemake.params
vcf_to_hdf5(snakemake.input.vcf, snakemake.input.panel, snakemake.output.h5, min_maf=p.min_maf,
            on_unphased=p.on_unphased, chunk_size=p.chunk_size, panel_subset=p.panel_subset,
            indels=p.indels)
