import sys

sys.stderr = open(snakemake.log[0], "w")
from omicslm.io.logs import setup_logging
from omicslm.crispr.plot import plot_external, plot_scatter

setup_logging()
if snakemake.rule == "crispr_external_plot":
    plot_external(snakemake.input.predictions, snakemake.params.methods, snakemake.output[0],
                  title=snakemake.wildcards.name)
else:
    plot_scatter(list(snakemake.input.predictions), snakemake.params.methods, snakemake.output[0])
