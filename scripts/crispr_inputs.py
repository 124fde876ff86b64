import sys

sys.stderr = open(snakemake.log[0], "w")
from omicslm.io.logs import setup_logging
from omicslm.crispr.io import table_to_inputs, xlsx_to_inputs

setup_logging()
d, o, policy = snakemake.params.data, snakemake.output, snakemake.params.on_bad_record
rng = tuple(d["label_range"])
if d["source"] == "azimuth":
    a = d["azimuth"]
    table_to_inputs(snakemake.input.table, o.fasta, o.labels, context_column=a["context_column"],
                    label_column=a["label_column"], label_scale=a["label_scale"], label_range=rng, on_bad_record=policy)
else:
    x = d["workbook"]
    xlsx_to_inputs(snakemake.input.table, o.fasta, o.labels, label_range=rng, on_bad_record=policy,
                   **{key: x[key] for key in x if key != "path"})
