# Text LM branch: constants and input functions (paste into common.smk, or include before textlm.smk).
import os

# Everything comes from the package index or the corpus; never from a model hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

TEXTLM = config["textlm"]
TEXTLM_DIR = "results/textlm"
TEXTLM_MODELS = list(TEXTLM["models"])
TEXTLM_RESOURCES = TEXTLM["resources"]


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


TEXTLM_SCORE = TEXTLM["score"]  # your own text: set name -> globs of its files


def textlm_score_files(wildcards):
    """The files of one ``textlm.score`` set, in sorted order (globs expanded when the DAG is built)."""
    from omicslm.textlm.corpus import expand_globs

    return [str(p) for p in expand_globs(TEXTLM_SCORE[wildcards.tset])]


def textlm_kind(wildcards):
    """Tokenizer kind of a model: clm for GPT-2, mlm (RoBERTa layout) for the masked LM."""
    return TEXTLM["models"][wildcards.tlm_model]["objective"]


# What each step is made with (config name -> value) and which steps it reads: settings_above (common.smk)
# turns these into each rule's rerun key; steps per tokenizer kind (clm, mlm) and model. The tokenizer
# descends from the corpus only when it is trained on it.
TEXTLM_KINDS = ("clm", "mlm")
TEXTLM_SETTINGS = {
    "textlm_corpus": {"textlm.corpus": TEXTLM["corpus"]},
    "textlm_tokenizers": {"textlm.tokenizer": TEXTLM["tokenizer"]},
    **{f"textlm_tokenize/{k}": {"textlm.data.batch_rows": TEXTLM["data"]["batch_rows"]} for k in TEXTLM_KINDS},
    **{f"textlm_chunk/{k}": {"textlm.data.block_size": TEXTLM["data"]["block_size"],
                             "textlm.data.batch_rows": TEXTLM["data"]["batch_rows"]} for k in TEXTLM_KINDS},
    **{f"textlm_train/{m}": {f"textlm.models.{m}": TEXTLM["models"][m], "textlm.train": TEXTLM["train"],
                             "textlm.mlm_probability": TEXTLM["mlm_probability"],
                             "textlm.max_eval_blocks": TEXTLM["max_eval_blocks"]} for m in TEXTLM_MODELS},
    **{f"textlm_evaluate/{m}": {"textlm.evaluate": TEXTLM["evaluate"], "textlm.mlm_probability": TEXTLM["mlm_probability"]}
       for m in TEXTLM_MODELS},
    **{f"textlm_score/{m}/{t}": {f"textlm.score.{t}": TEXTLM_SCORE[t], "textlm.mlm_probability": TEXTLM["mlm_probability"],
                                 "textlm.evaluate.unigram_alpha": TEXTLM["evaluate"]["unigram_alpha"],
                                 "textlm.evaluate.seed": TEXTLM["evaluate"]["seed"]}
       for m in TEXTLM_MODELS for t in TEXTLM_SCORE},
    "textlm_generate": {"textlm.generate": TEXTLM["generate"]},
}
TEXTLM_PARENTS = {
    "textlm_generate": [f"textlm_train/{m}" for m in TEXTLM_MODELS],
    "textlm_corpus": [],
    "textlm_tokenizers": ["textlm_corpus"] if TEXTLM["tokenizer"]["source"] == "train" else [],
    **{f"textlm_tokenize/{k}": ["textlm_corpus", "textlm_tokenizers"] for k in TEXTLM_KINDS},
    **{f"textlm_chunk/{k}": [f"textlm_tokenize/{k}"] for k in TEXTLM_KINDS},
    **{f"textlm_train/{m}": [f"textlm_chunk/{s['objective']}", "textlm_tokenizers"] for m, s in TEXTLM["models"].items()},
    **{f"textlm_evaluate/{m}": [f"textlm_chunk/{s['objective']}", f"textlm_train/{m}"]
       for m, s in TEXTLM["models"].items()},
    **{f"textlm_score/{m}/{t}": [f"textlm_chunk/{s['objective']}", f"textlm_train/{m}"]
       for m, s in TEXTLM["models"].items() for t in TEXTLM_SCORE},
    "textlm_eval": [f"textlm_evaluate/{m}" for m in TEXTLM_MODELS]
                   + [f"textlm_score/{m}/{t}" for m in TEXTLM_MODELS for t in TEXTLM_SCORE],
    "textlm_plot": [f"textlm_train/{m}" for m in TEXTLM_MODELS],
}


def textlm_made_with(step):
    """The rerun key of a text LM step: :func:`settings_above` (common.smk) over the tables above."""
    return settings_above(step, TEXTLM_SETTINGS, TEXTLM_PARENTS)
