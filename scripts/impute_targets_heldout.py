import sys

sys.stderr = open(snakemake.log[0], "w")
from omicslm.io.logs import setup_logging
from omicslm.impute.targets import write_heldout_targets

setup_logging()
i, o = snakemake.input, snakemake.output
write_heldout_targets(i.h5, i.split, i.array, o.targets, o.truth, phased=snakemake.params.phased)
