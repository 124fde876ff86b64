# Constants and input functions of the CRISPR branch (kept apart from its rules, as --lint asks).

import re
from pathlib import Path

from omicslm.crispr.methods import ENCODER_KINDS, check_stack_methods

CRISPR = config["crispr"]
CRISPR_DIR = "results/crispr"
# a method with enabled: false is left out (a preset merged over config.yaml cannot remove a key); from here on
# crispr.models.methods holds the enabled methods, without the key (it does not change what a method trains)
CRISPR["models"]["methods"] = {m: {k: v for k, v in spec.items() if k != "enabled"}
                               for m, spec in CRISPR["models"]["methods"].items() if spec.get("enabled", True)}
if not CRISPR["models"]["methods"]:
    raise ValueError("config crispr.models.methods: every method has enabled: false")
CRISPR_METHODS = list(CRISPR["models"]["methods"])
# "stack" methods blend the predictions of trained ones (rule crispr_stack); all others are trained (crispr_train)
CRISPR_STACKED = [m for m, s in CRISPR["models"]["methods"].items() if s["kind"] == "stack"]
CRISPR_TRAINED = [m for m in CRISPR_METHODS if m not in CRISPR_STACKED]
CRISPR_ENCODER_CKPT = CRISPR["encoder"]["checkpoint"]
CRISPR_THREADS = CRISPR["models"]["threads"]
CRISPR_RESOURCES = CRISPR["models"]["resources"]
# the models block less its methods: what every trained method shares (batch size, head, train schedule)
CRISPR_MODELS_SHARED = {k: v for k, v in CRISPR["models"].items() if k != "methods"}
check_stack_methods(CRISPR["models"]["methods"])
def crispr_table(wildcards):
    """The raw efficiency table: the fetched Doench 2016 csv, the user's own table or CRISPRon-style workbook."""
    if CRISPR["data"]["source"] == "azimuth":
        return "resources/crispr/FC_plus_RES_withPredictions.csv"
    return CRISPR["data"][CRISPR["data"]["source"]]["path"]


def crispr_encoder(wildcards):
    """The encoder directory: the user's local checkpoint, else the one pretrained by crispr_pretrain."""
    return CRISPR_ENCODER_CKPT or f"{CRISPR_DIR}/encoder"


def crispr_encoder_name():
    """How results/crispr_eval.tsv names the encoder."""
    if CRISPR_ENCODER_CKPT:
        return f"checkpoint:{CRISPR_ENCODER_CKPT}"
    p = CRISPR["encoder"]["pretrain"]
    return f"pretrained-here:mlm-{p['layers']}x{p['hidden']}"


def crispr_method_step(method):
    """The step that writes ``method``'s predictions: crispr_stack/<method> or crispr_train/<method>."""
    return f"crispr_stack/{method}" if method in CRISPR_STACKED else f"crispr_train/{method}"


def crispr_stack_members(wildcards, what="predictions.tsv"):
    """The member files (predictions.tsv or runtime.json) of stack method ``wildcards.method``."""
    return [f"{CRISPR_DIR}/models/{m}/{what}" for m in CRISPR["models"]["methods"][wildcards.method]["members"]]


# What each step is made with (config name -> value) and which steps it reads: settings_above (common.smk)
# turns these into each rule's rerun key. "encoder" is the encoder an encoder method is fine-tuned from (a local
# checkpoint or crispr_pretrain's); the energy step is listed above the tokens even when it is off.
CRISPR_SETTINGS = {
    "crispr_inputs": {"crispr.data": CRISPR["data"], "crispr.on_bad_record": CRISPR["on_bad_record"]},
    "crispr_mers": {"crispr.on_bad_record": CRISPR["on_bad_record"]},
    "crispr_join": {"crispr.join": CRISPR["join"]},
    "crispr_energy": {"crispr.energy": CRISPR["energy"]},
    "crispr_split": {"crispr.split": CRISPR["split"]},
    "crispr_tokenize": {"crispr.k": CRISPR["k"]},
    "crispr_pretrain": {"crispr.encoder.pretrain": CRISPR["encoder"]["pretrain"], "crispr.k": CRISPR["k"]},
    "encoder": {"crispr.encoder.checkpoint": CRISPR_ENCODER_CKPT, "crispr.encoder.extra_fasta": CRISPR["encoder"]["extra_fasta"]},
    **{f"crispr_train/{m}": {f"crispr.models.methods.{m}": CRISPR["models"]["methods"][m],
                             "crispr.models (shared)": CRISPR_MODELS_SHARED, "crispr.k": CRISPR["k"],
                             "crispr.encoder (name)": crispr_encoder_name()} for m in CRISPR_TRAINED},
    **{f"crispr_stack/{m}": {f"crispr.models.methods.{m}": CRISPR["models"]["methods"][m]} for m in CRISPR_STACKED},
}
CRISPR_PARENTS = {
    "crispr_inputs": [],
    "crispr_mers": ["crispr_inputs"],
    "crispr_join": ["crispr_inputs", "crispr_mers"],
    "crispr_energy": ["crispr_join"],
    "crispr_split": ["crispr_join"],
    "crispr_tokenize": ["crispr_join", "crispr_split", "crispr_energy"],
    "crispr_pretrain": ["crispr_inputs", "crispr_mers"],
    "encoder": [] if CRISPR_ENCODER_CKPT else ["crispr_pretrain"],
    **{f"crispr_train/{m}": ["crispr_tokenize", *(["encoder"] if spec["kind"] in ENCODER_KINDS else [])]
       for m, spec in CRISPR["models"]["methods"].items() if m in CRISPR_TRAINED},
    **{f"crispr_stack/{m}": [f"crispr_train/{x}" for x in CRISPR["models"]["methods"][m]["members"]]
       for m in CRISPR_STACKED},
    "crispr_eval": [crispr_method_step(m) for m in CRISPR_METHODS],
    "crispr_plot": [crispr_method_step(m) for m in CRISPR_METHODS],
}


def _fasta_stem(path):
    name = Path(path).name
    for ext in (".fasta", ".fa", ".fna", ".txt"):
        if name.lower().endswith(ext):
            return name[: -len(ext)]
    return name


# crispr.predict: fasta stem -> path; the method (None: chosen by out-of-sample Spearman among all)
CRISPR_PREDICT = CRISPR["predict"]
CRISPR_PREDICT_FASTA = {}
for _fa in CRISPR_PREDICT["fasta"]:
    if _fasta_stem(_fa) in CRISPR_PREDICT_FASTA:
        raise ValueError(f"crispr.predict.fasta: {_fa} and {CRISPR_PREDICT_FASTA[_fasta_stem(_fa)]} share the name "
                         f"{_fasta_stem(_fa)!r}, and so one output file: rename one")
    CRISPR_PREDICT_FASTA[_fasta_stem(_fa)] = _fa
if CRISPR_PREDICT["method"] is not None and CRISPR_PREDICT["method"] not in CRISPR_METHODS:
    raise ValueError(f"crispr.predict.method {CRISPR_PREDICT['method']!r} is not a method of crispr.models.methods "
                     f"({', '.join(CRISPR_METHODS)})")
if CRISPR_PREDICT["method"] is None:
    CRISPR_PREDICT_METHODS = CRISPR_METHODS
elif CRISPR_PREDICT["method"] in CRISPR_STACKED:
    CRISPR_PREDICT_METHODS = [CRISPR_PREDICT["method"], *CRISPR["models"]["methods"][CRISPR_PREDICT["method"]]["members"]]
else:
    CRISPR_PREDICT_METHODS = [CRISPR_PREDICT["method"]]
CRISPR_SETTINGS["crispr_predict"] = {"crispr.predict.method": CRISPR_PREDICT["method"]}
CRISPR_PARENTS["crispr_predict"] = [crispr_method_step(m) for m in CRISPR_PREDICT_METHODS]


# crispr.external_tests: name -> table; each is scored by every method (crispr_external_guides / _score / _plot)
CRISPR_EXTERNAL = CRISPR["external_tests"]
for _name, _spec in CRISPR_EXTERNAL.items():
    CRISPR_SETTINGS[f"crispr_external_guides/{_name}"] = {
        f"crispr.external_tests.{_name}": _spec, "crispr.data.label_range": CRISPR["data"]["label_range"],
        "crispr.on_bad_record": CRISPR["on_bad_record"], "crispr.join": CRISPR["join"]}
    CRISPR_PARENTS[f"crispr_external_guides/{_name}"] = []
    CRISPR_PARENTS[f"crispr_external_score/{_name}"] = [f"crispr_external_guides/{_name}", "crispr_join",
                                                        *(crispr_method_step(m) for m in CRISPR_METHODS)]
    CRISPR_PARENTS[f"crispr_external_plot/{_name}"] = [f"crispr_external_score/{_name}"]
CRISPR_PARENTS["crispr_eval"] = CRISPR_PARENTS["crispr_eval"] + [f"crispr_external_score/{n}" for n in CRISPR_EXTERNAL]


def crispr_made_with(step):
    """The rerun key of a CRISPR step: :func:`settings_above` (common.smk) over the tables above."""
    return settings_above(step, CRISPR_SETTINGS, CRISPR_PARENTS)
