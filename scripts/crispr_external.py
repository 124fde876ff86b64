import sys

sys.stderr = open(snakemake.log[0], "w")
from omicslm.io.logs import setup_logging
from omicslm.crispr.external import external_guides, score_external

setup_logging()
p = snakemake.params
if snakemake.rule == "crispr_external_guides":
    external_guides(p.spec, snakemake.output.guides, label_range=p.label_range, on_bad_record=p.on_bad_record,
                    join=p.join)
else:
    score_external(snakemake.input.guides, snakemake.input.training, dict(zip(p.methods, snakemake.input.kept)),
                   snakemake.output.predictions)
