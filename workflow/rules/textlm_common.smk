# Text LM branch: constants and input functions (paste into common.smk, or include before textlm.smk).
import os

# Everything comes from the package index or the corpus; never from a model hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

TEXTLM = config["textlm"]
TEXTLM_DIR = "results/textlm"
TEXTLM_MODELS = list(TEXTLM["models"])
TEXTLM_RESOURCES = TEXTLM.get("resources") or {}


def textlm_corpus_input(wildcards):
    """Corpus inputs: the fetched Shakespeare folder, the user's text files, or the saved dataset folder."""
    source = TEXTLM["corpus"]["source"]
    if source == "shakespeare":
        return "resources/textlm/shakespeare"
    if source == "files":
        from omicslm.textlm.corpus import expand_globs

        return [str(f) for f in expand_globs(TEXTLM["corpus"]["files"])]
    return TEXTLM["corpus"]["dataset"]


def textlm_tokenizer_input(wildcards):
    """The fetched GPT-2 BPE (source gpt2) or the corpus (source train: a BPE is trained on it)."""
    source = TEXTLM["tokenizer"]["source"]
    if source == "gpt2":
        return "resources/textlm/gpt2_bpe"
    return f"{TEXTLM_DIR}/corpus" if source == "train" else []


def textlm_kind(wildcards):
    """Tokenizer kind of a model: clm for GPT-2, mlm (RoBERTa layout) for the masked LM."""
    return TEXTLM["models"][wildcards.tlm_model]["objective"]


# the settings of each data step, for textlm_upstream
TEXTLM_STEP_SETTINGS = {"corpus": TEXTLM["corpus"], "tokenizer": TEXTLM["tokenizer"], "data": TEXTLM["data"]}


def textlm_upstream(step):
    """:func:`upstream_settings` (common.smk) of the data steps above ``step`` (its own settings are params
    already); the tokenizer descends from the corpus only when it is trained on it.
    """
    tokenizer = ["corpus", "tokenizer"] if TEXTLM["tokenizer"]["source"] == "train" else ["tokenizer"]
    steps = {"tokenizers": tokenizer, "tokenize": ["corpus", *tokenizer], "chunk": ["corpus", *tokenizer],
             "train": ["corpus", *tokenizer, "data"]}[step]
    return upstream_settings(TEXTLM_STEP_SETTINGS, steps)


def textlm_model_settings(name):
    """What model ``name`` is trained with: params of textlm_train and of the steps downstream of it.

    Downstream too because Snakemake removes a job's outputs when it starts and does not go back for a
    missing intermediate whose downstream files exist: a textlm_train job killed after an edit would
    otherwise leave the old evaluation standing.
    """
    return {"spec": TEXTLM["models"][name], "training": TEXTLM["train"], "mlm_probability": TEXTLM["mlm_probability"],
            "max_eval_blocks": TEXTLM.get("max_eval_blocks"), "upstream": textlm_upstream("train")}
