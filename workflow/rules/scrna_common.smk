# Constants and input functions of the single-cell branch (kept apart from its rules, as --lint asks).

SCRNA = config["scrna"]
SCRNA_DIR = "results/scrna"
SCRNA_DATASETS = list(SCRNA["datasets"])
SCRNA_MODELS = list(SCRNA["models"])
SCRNA_RESOURCES = SCRNA.get("resources") or {}
# (data set, model) runs, and the binnings each data set is tokenized with (those its models use)
SCRNA_RUNS = [(d, m) for d in SCRNA_DATASETS for m in SCRNA_MODELS]
SCRNA_BINNINGS = list(dict.fromkeys(spec["binning"] for spec in SCRNA["models"].values()))
# where each default source lies once fetched (the fetch rule's output folder, then the file in it)
SCRNA_SOURCES = {
    "scanpy_brain10k": ("resources/scrna/scanpy", "resources/scrna/scanpy/brain10k.zarr"),
    "scanpy_pbmc68k": ("resources/scrna/scanpy", "resources/scrna/scanpy/pbmc68k_reduced.h5ad"),
    "celltypist": ("resources/scrna/celltypist/sample_cell_by_gene.csv",) * 2,
}
# ingest options a data set block may set (the rest of its keys say where the data is)
SCRNA_INGEST_KEYS = ("format", "matrix", "gene_column", "transpose", "label_column", "lognorm", "max_cells",
                     "integer_tolerance", "min_genes", "min_cells", "max_genes", "on_duplicate_genes")


def scrna_raw_input(wildcards):
    """What the ingest job reads: a fetch rule's output for the default sources, else the user's path."""
    spec = SCRNA["datasets"][wildcards.scd]
    return SCRNA_SOURCES[spec["source"]][0] if spec["source"] in SCRNA_SOURCES else spec["path"]


def scrna_raw_path(dataset):
    """The count matrix file or folder inside what scrna_raw_input names."""
    spec = SCRNA["datasets"][dataset]
    return SCRNA_SOURCES[spec["source"]][1] if spec["source"] in SCRNA_SOURCES else spec["path"]


def scrna_ingest_options(dataset):
    """Ingest keywords: the shared scrna.ingest block, overridden by the data set's own keys."""
    spec = SCRNA["datasets"][dataset]
    options = {k: v for k, v in SCRNA["ingest"].items()}
    options.update({k: spec[k] for k in SCRNA_INGEST_KEYS if k in spec})
    options["fmt"] = options.pop("format")
    return options


def scrna_model_spec(model):
    """A model's resolved options: the shared model / loss / train blocks with the model's overrides."""
    spec = SCRNA["models"][model]
    return {
        "model": {**SCRNA["model"], **spec.get("model", {})},
        "loss": {**SCRNA["loss"], "head": spec["head"], **spec.get("loss", {})},
        "train": {**SCRNA["train"], **spec.get("train", {})},
        "batch_size": SCRNA["batch_size"],
        "steps_per_epoch": SCRNA["steps_per_epoch"],
        "max_val_cells": SCRNA["evaluate"]["max_val_cells"],
        "eval_mask_fraction": SCRNA["evaluate"]["mask_fraction"],
        "eval_seed": SCRNA["evaluate"]["seed"],
    }


def scrna_tokens(dataset, model):
    """The tokenized folder a model trains on: its data set under its binning."""
    return f"{SCRNA_DIR}/{dataset}/tokens/{SCRNA['models'][model]['binning']}"


def scrna_upstream(dataset, binning=None):
    """The settings of the data steps a file of ``dataset`` descends from (ingest; tokenize under ``binning``).

    A param of every step below them, for the reason :func:`upstream_settings` (common.smk) gives;
    per data set and binning, so an edit reruns nothing that was not stale already.
    """
    out = {"ingest": {"path": scrna_raw_path(dataset), "options": scrna_ingest_options(dataset)}}
    if binning is not None:
        out["tokenize"] = {"binning": SCRNA["binnings"][binning], "split": SCRNA["split"],
                           "tokenize": SCRNA["tokenize"]}
    return out


def scrna_run_upstream(dataset, model):
    """:func:`scrna_upstream` of a (data set, model) run: the data set under the model's binning."""
    return scrna_upstream(dataset, SCRNA["models"][model]["binning"])


# the upstream settings of everything the tables and plots read: every data set under every binning
SCRNA_ALL_UPSTREAM = {d: {b: scrna_upstream(d, b) for b in SCRNA_BINNINGS} for d in SCRNA_DATASETS}
