# Constants and input functions of the single-cell branch (kept apart from its rules, as --lint asks).

SCRNA = config["scrna"]
SCRNA_DIR = "results/scrna"
# a data set or model with enabled: false is left out (a preset merged over config.yaml cannot remove a key)
SCRNA_DATASETS = [d for d, spec in SCRNA["datasets"].items() if spec.get("enabled", True)]
SCRNA_MODELS = [m for m, spec in SCRNA["models"].items() if spec.get("enabled", True)]
SCRNA_RESOURCES = SCRNA["resources"]
# (data set, model) runs, and the binnings each data set is tokenized with (those its models use)
SCRNA_RUNS = [(d, m) for d in SCRNA_DATASETS for m in SCRNA_MODELS]
SCRNA_BINNINGS = list(dict.fromkeys(SCRNA["models"][m]["binning"] for m in SCRNA_MODELS))
# where each default source lies once fetched (the fetch rule's output folder, then the file in it)
SCRNA_SOURCES = {
    "scanpy_brain10k": ("resources/scrna/scanpy", "resources/scrna/scanpy/brain10k.zarr"),
    "scanpy_pbmc68k": ("resources/scrna/scanpy", "resources/scrna/scanpy/pbmc68k_reduced.h5ad"),
    "celltypist": ("resources/scrna/celltypist/sample_cell_by_gene.csv",) * 2,
}
# what scrna_baselines reads of the evaluation options (not the batch size: the baselines run no model)
SCRNA_BASELINE_OPTIONS = {k: v for k, v in SCRNA["evaluate"].items() if k != "batch_size"}
# ingest options a data set block may set (the rest of its keys say where the data is)
SCRNA_INGEST_KEYS = ("format", "matrix", "gene_column", "transpose", "label_column", "lognorm", "max_cells",
                     "integer_tolerance", "min_genes", "min_cells", "max_genes", "on_duplicate_genes")


# scrna.embed: name -> cells to embed; the (data set, model) run that embeds them
SCRNA_EMBED = SCRNA["embed"]
SCRNA_EMBED_SETS = list(SCRNA_EMBED["sets"])


def _default_embed_run():
    labelled = [d for d in SCRNA_DATASETS if SCRNA["datasets"][d].get("label_column", SCRNA["ingest"]["label_column"])]
    return f"{(labelled or SCRNA_DATASETS)[0]}/{SCRNA_MODELS[0]}"


SCRNA_EMBED_RUN = SCRNA_EMBED["model"] or _default_embed_run()
if tuple(SCRNA_EMBED_RUN.split("/")) not in SCRNA_RUNS:
    raise ValueError(f"scrna.embed.model {SCRNA_EMBED_RUN!r} is not '<data set>/<model>' of scrna.datasets and "
                     f"scrna.models ({', '.join(f'{d}/{m}' for d, m in SCRNA_RUNS)})")


def _scrna_block(name, embed=False):
    return SCRNA_EMBED["sets"][name] if embed else SCRNA["datasets"][name]


def scrna_raw_input(wildcards):
    """What the ingest job reads: a fetch rule's output for the default sources, else the user's path."""
    spec = _scrna_block(wildcards.sce, True) if "sce" in wildcards.keys() else _scrna_block(wildcards.scd)
    return SCRNA_SOURCES[spec["source"]][0] if spec["source"] in SCRNA_SOURCES else spec["path"]


def scrna_raw_path(dataset, embed=False):
    """The count matrix file or folder inside what scrna_raw_input names."""
    spec = _scrna_block(dataset, embed)
    return SCRNA_SOURCES[spec["source"]][1] if spec["source"] in SCRNA_SOURCES else spec["path"]


def scrna_ingest_options(dataset, embed=False):
    """Ingest keywords: the shared scrna.ingest block, overridden by the data set's (or embed set's) own keys."""
    spec = _scrna_block(dataset, embed)
    options = {k: v for k, v in SCRNA["ingest"].items()}
    options.update({k: spec[k] for k in SCRNA_INGEST_KEYS if k in spec})
    options["fmt"] = options.pop("format")
    return options


def scrna_model_spec(model):
    """A model's resolved options: the shared model / loss / train blocks with the model's overrides."""
    spec = SCRNA["models"][model]
    return {
        "model": {**SCRNA["model"], **spec["model"]},
        "loss": {**SCRNA["loss"], "head": spec["head"], **spec["loss"]},
        "train": {**SCRNA["train"], **spec["train"]},
        "batch_size": SCRNA["batch_size"],
        "steps_per_epoch": SCRNA["steps_per_epoch"],
        "max_val_cells": SCRNA["evaluate"]["max_val_cells"],
        "eval_mask_fraction": SCRNA["evaluate"]["mask_fraction"],
        "eval_seed": SCRNA["evaluate"]["seed"],
    }


def scrna_tokens(dataset, model):
    """The tokenized folder a model trains on: its data set under its binning."""
    return f"{SCRNA_DIR}/{dataset}/tokens/{SCRNA['models'][model]['binning']}"


def scrna_evaluate_options(model):
    """What scrna_evaluate reads of config for ``model``: its binning, the device and the evaluation options."""
    return {"binning": SCRNA["models"][model]["binning"], "device": SCRNA["train"]["device"],
            **{k: SCRNA["evaluate"][k] for k in ("mask_fraction", "seed", "batch_size", "knn_k", "kmeans_n_init")}}


# What each step is made with (config name -> value) and which steps it reads: settings_above (common.smk)
# turns these into each rule's rerun key; steps per data set (d), binning (b) and model (m).
SCRNA_SETTINGS = {
    **{f"scrna_ingest/{d}": {f"scrna.datasets.{d} (path, ingest options)":
                             {"path": scrna_raw_path(d), "options": scrna_ingest_options(d)}} for d in SCRNA_DATASETS},
    **{f"scrna_tokenize/{d}/{b}": {f"scrna.binnings.{b}": SCRNA["binnings"][b], "scrna.split": SCRNA["split"],
                                   "scrna.tokenize": SCRNA["tokenize"]} for d in SCRNA_DATASETS for b in SCRNA_BINNINGS},
    **{f"scrna_baselines/{d}": {"scrna.evaluate (less batch_size)": SCRNA_BASELINE_OPTIONS} for d in SCRNA_DATASETS},
    **{f"scrna_train/{d}/{m}": {f"scrna.models.{m} (resolved)": scrna_model_spec(m)} for d, m in SCRNA_RUNS},
    **{f"scrna_evaluate/{d}/{m}": {f"scrna evaluation of {m}": scrna_evaluate_options(m)} for d, m in SCRNA_RUNS},
}
_run_d, _run_m = SCRNA_EMBED_RUN.split("/")
SCRNA_SETTINGS.update({
    **{f"scrna_embed_ingest/{e}": {f"scrna.embed.sets.{e} (path, ingest options)":
                                   {"path": scrna_raw_path(e, True), "options": scrna_ingest_options(e, True)}}
       for e in SCRNA_EMBED_SETS},
    **{f"scrna_embed/{e}": {"scrna.embed": {"model": SCRNA_EMBED_RUN, "on_unknown_gene": SCRNA_EMBED["on_unknown_gene"]},
                            "scrna.evaluate (embedding)": {k: SCRNA["evaluate"][k] for k in
                                                           ("batch_size", "pca_components", "hvg_genes", "seed", "scvi")}}
       for e in SCRNA_EMBED_SETS},
})
SCRNA_PARENTS = {
    **{f"scrna_embed_ingest/{e}": [] for e in SCRNA_EMBED_SETS},
    **{f"scrna_embed/{e}": [f"scrna_embed_ingest/{e}", f"scrna_train/{_run_d}/{_run_m}",
                            f"scrna_tokenize/{_run_d}/{SCRNA['models'][_run_m]['binning']}"] for e in SCRNA_EMBED_SETS},
    **{f"scrna_embed_umap/{e}": [f"scrna_embed/{e}"] for e in SCRNA_EMBED_SETS},
    **{f"scrna_ingest/{d}": [] for d in SCRNA_DATASETS},
    **{f"scrna_tokenize/{d}/{b}": [f"scrna_ingest/{d}"] for d in SCRNA_DATASETS for b in SCRNA_BINNINGS},
    **{f"scrna_baselines/{d}": [f"scrna_ingest/{d}", *(f"scrna_tokenize/{d}/{b}" for b in SCRNA_BINNINGS)]
       for d in SCRNA_DATASETS},
    **{f"scrna_train/{d}/{m}": [f"scrna_tokenize/{d}/{SCRNA['models'][m]['binning']}"] for d, m in SCRNA_RUNS},
    **{f"scrna_evaluate/{d}/{m}": [f"scrna_tokenize/{d}/{SCRNA['models'][m]['binning']}", f"scrna_train/{d}/{m}"]
       for d, m in SCRNA_RUNS},
    "scrna_eval": [*(f"scrna_baselines/{d}" for d in SCRNA_DATASETS), *(f"scrna_evaluate/{d}/{m}" for d, m in SCRNA_RUNS)],
    "scrna_plot": [*(f"scrna_baselines/{d}" for d in SCRNA_DATASETS), *(f"scrna_train/{d}/{m}" for d, m in SCRNA_RUNS)],
}


def scrna_made_with(step):
    """The rerun key of a single-cell step: :func:`settings_above` (common.smk) over the tables above."""
    return settings_above(step, SCRNA_SETTINGS, SCRNA_PARENTS)
