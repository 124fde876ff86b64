import sys

sys.stderr = open(snakemake.log[0], "w")
from omicslm.io.logs import setup_logging
from omicslm.crispr.join import join_guides

setup_logging()
j = snakemake.params.join
join_guides(snakemake.input.labels, snakemake.input.mer30, snakemake.output.guides, on_missing=j["on_missing"],
            on_multiple=j["on_multiple"])
