# Constants and input functions of the CRISPR branch (kept apart from its rules, as --lint asks).

from omicslm.crispr.methods import ENCODER_KINDS, check_stack_methods

CRISPR = config["crispr"]
CRISPR_DIR = "results/crispr"
CRISPR_METHODS = list(CRISPR["models"]["methods"])
# "stack" methods blend the predictions of trained ones (rule crispr_stack); all others are trained (crispr_train)
CRISPR_STACKED = [m for m, s in CRISPR["models"]["methods"].items() if s["kind"] == "stack"]
CRISPR_TRAINED = [m for m in CRISPR_METHODS if m not in CRISPR_STACKED]
CRISPR_ENCODER_CKPT = CRISPR["encoder"]["checkpoint"]
CRISPR_THREADS = CRISPR["models"].get("threads", 2)
CRISPR_RESOURCES = CRISPR["models"].get("resources") or {}
# the models block less its methods: what every trained method shares (batch size, head, train schedule)
CRISPR_MODELS_SHARED = {k: v for k, v in CRISPR["models"].items() if k != "methods"}
check_stack_methods(CRISPR["models"]["methods"])
# the settings of each data step, for crispr_upstream
CRISPR_STEP_SETTINGS = {
    "inputs": {"data": CRISPR["data"], "on_bad_record": CRISPR["on_bad_record"]},
    "mers": {"on_bad_record": CRISPR["on_bad_record"]},
    "join": CRISPR["join"],
    "energy": CRISPR["energy"],
    "split": CRISPR["split"],
    "tokenize": {"k": CRISPR["k"]},
}


def crispr_upstream(*steps):
    """:func:`upstream_settings` (common.smk) of the CRISPR data steps."""
    return upstream_settings(CRISPR_STEP_SETTINGS, steps)


def crispr_table(wildcards):
    """The raw efficiency table: the fetched Doench 2016 csv, or the user's CRISPRon-style workbook."""
    if CRISPR["data"]["source"] == "azimuth":
        return "resources/crispr/FC_plus_RES_withPredictions.csv"
    return CRISPR["data"]["workbook"]["path"]


def crispr_encoder(wildcards):
    """The encoder directory: the user's local checkpoint, else the one pretrained by crispr_pretrain."""
    return CRISPR_ENCODER_CKPT or f"{CRISPR_DIR}/encoder"


def crispr_encoder_name():
    """How results/crispr_eval.tsv names the encoder."""
    if CRISPR_ENCODER_CKPT:
        return f"checkpoint:{CRISPR_ENCODER_CKPT}"
    p = CRISPR["encoder"]["pretrain"]
    return f"pretrained-here:mlm-{p['layers']}x{p['hidden']}"


def crispr_stack_members(wildcards, what="predictions.tsv"):
    """The member files (predictions.tsv or runtime.json) of stack method ``wildcards.method``."""
    return [f"{CRISPR_DIR}/models/{m}/{what}" for m in CRISPR["models"]["methods"][wildcards.method]["members"]]


def crispr_method_settings(method):
    """The config a method's predictions are made with: params of its step and of the steps downstream.

    Downstream too because Snakemake removes a job's outputs when it starts and does not go back for
    a missing intermediate whose downstream files exist: a crispr_train (or crispr_pretrain) job killed
    after a parameter change would otherwise leave the old table standing. Per method, so editing one
    method retrains that one only.
    """
    spec = CRISPR["models"]["methods"][method]
    if spec["kind"] == "stack":
        return {"spec": spec, "members": {m: crispr_method_settings(m) for m in spec["members"]}}
    out = {"spec": spec, "models": CRISPR_MODELS_SHARED, "data": crispr_upstream(*CRISPR_STEP_SETTINGS)}  # k: tokenize
    if spec["kind"] in ENCODER_KINDS:
        out["encoder"] = CRISPR["encoder"]
    return out
