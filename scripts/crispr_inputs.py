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
elif d["source"] == "table":  # ids without id_column: row_<row number in the file> (the header is row 1)
    table_to_inputs(snakemake.input.table, o.fasta, o.labels, label_range=rng, on_bad_record=policy, id_prefix="row",
                    row_base=2, **{key: value for key, value in d["table"].items() if key != "path"})
else:
    x = d["workbook"]
    xlsx_to_inputs(snakemake.input.table, o.fasta, o.labels, label_range=rng, on_bad_record=policy,
                   **{key: x[key] for key in x if key != "path"})
