# Single-cell branch: count matrix -> checked counts + QC -> tokens per binning -> baselines, one cell transformer per
# (data set, model) -> results/scrna_eval.tsv + loss curves. Each model's resumable checkpoint lives in
# {dataset}/{model}/work/ (not a declared output), so a killed job resumes from work/last/ when the rule reruns.

include: "scrna_common.smk"


wildcard_constraints:
    scd="|".join(SCRNA_DATASETS),
    scm="|".join(SCRNA_MODELS),
    scb="|".join(SCRNA_BINNINGS),
    sce="|".join(SCRNA_EMBED_SETS) or "(?!)",  # (?!): matches nothing


rule scrna_all:
    input:
        "results/scrna_eval.tsv",
        "results/scrna_loss_curves.png",
        expand("results/scrna/embed/{sce}.h5ad", sce=SCRNA_EMBED_SETS),
        expand("results/scrna/embed/{sce}_umap.png", sce=SCRNA_EMBED_SETS),


rule scrna_fetch_scanpy:
    output:
        data=directory("resources/scrna/scanpy"),
    params:
        requirement=SCRNA["fetch"]["scanpy"],
        sha256=lambda wc: download_sha256(SCRNA["fetch"]["scanpy"]),
    log:
        "logs/scrna/fetch_scanpy.log",
    conda:
        "../../envs/scrna.yaml"
    script:
        "../../scripts/scrna_fetch_scanpy.py"


rule scrna_fetch_celltypist:
    output:
        csv="resources/scrna/celltypist/sample_cell_by_gene.csv",
    params:
        requirement=SCRNA["fetch"]["celltypist"],
        sha256=lambda wc: download_sha256(SCRNA["fetch"]["celltypist"]),
    log:
        "logs/scrna/fetch_celltypist.log",
    conda:
        "../../envs/scrna.yaml"
    script:
        "../../scripts/scrna_fetch_celltypist.py"


rule scrna_ingest:
    input:
        raw=scrna_raw_input,
    output:
        h5ad=f"{SCRNA_DIR}/{{scd}}/counts.h5ad",
        summary=f"{SCRNA_DIR}/{{scd}}/ingest_summary.json",
    params:
        path=lambda wc: scrna_raw_path(wc.scd),
        options=lambda wc: scrna_ingest_options(wc.scd),
    log:
        "logs/scrna/ingest_{scd}.log",
    conda:
        "../../envs/scrna.yaml"
    script:
        "../../scripts/scrna_ingest.py"


rule scrna_tokenize:
    input:
        h5ad=rules.scrna_ingest.output.h5ad,
    output:
        tokens=directory(f"{SCRNA_DIR}/{{scd}}/tokens/{{scb}}"),
    params:
        made_with=lambda wc: scrna_made_with(f"scrna_tokenize/{wc.scd}/{wc.scb}"),  # rerun key: read by no script (settings_above)
        binning=lambda wc: SCRNA["binnings"][wc.scb],
        split=SCRNA["split"],
        tokenize=SCRNA["tokenize"],
    log:
        "logs/scrna/tokenize_{scd}_{scb}.log",
    conda:
        "../../envs/scrna.yaml"
    script:
        "../../scripts/scrna_tokenize.py"


rule scrna_baselines:
    input:
        tokens=expand(f"{SCRNA_DIR}/{{{{scd}}}}/tokens/{{scb}}", scb=SCRNA_BINNINGS),
        h5ad=rules.scrna_ingest.output.h5ad,
    output:
        tsv=f"{SCRNA_DIR}/{{scd}}/baselines.tsv",
    params:
        made_with=lambda wc: scrna_made_with(f"scrna_baselines/{wc.scd}"),  # rerun key: read by no script (settings_above)
        binnings=SCRNA_BINNINGS,
        options=SCRNA_BASELINE_OPTIONS,
    log:
        "logs/scrna/baselines_{scd}.log",
    conda:
        "../../envs/scrna.yaml"
    script:
        "../../scripts/scrna_baselines.py"


rule scrna_train:
    input:
        tokens=lambda wc: scrna_tokens(wc.scd, wc.scm),
    output:
        best=directory(f"{SCRNA_DIR}/{{scd}}/{{scm}}/best"),
        history=f"{SCRNA_DIR}/{{scd}}/{{scm}}/history.tsv",
        summary=f"{SCRNA_DIR}/{{scd}}/{{scm}}/train_summary.json",
    params:
        made_with=lambda wc: scrna_made_with(f"scrna_train/{wc.scd}/{wc.scm}"),  # rerun key: read by no script (settings_above)
        options=lambda wc: scrna_model_spec(wc.scm),
        work_dir=f"{SCRNA_DIR}/{{scd}}/{{scm}}/work",
    threads: SCRNA["threads"]
    resources:
        gpu=SCRNA_RESOURCES["gpu"],
        mem_mb=SCRNA_RESOURCES["mem_mb"],
        runtime=SCRNA_RESOURCES["runtime"],
    log:
        "logs/scrna/train_{scd}_{scm}.log",
    conda:
        "../../envs/scrna.yaml"
    script:
        "../../scripts/scrna_train.py"


rule scrna_evaluate:
    input:
        tokens=lambda wc: scrna_tokens(wc.scd, wc.scm),
        best=rules.scrna_train.output.best,
        summary=rules.scrna_train.output.summary,
    output:
        tsv=f"{SCRNA_DIR}/{{scd}}/{{scm}}/eval.tsv",
    params:
        made_with=lambda wc: scrna_made_with(f"scrna_evaluate/{wc.scd}/{wc.scm}"),  # rerun key: read by no script (settings_above)
        options=lambda wc: scrna_evaluate_options(wc.scm),
    threads: SCRNA["threads"]
    resources:
        gpu=SCRNA_RESOURCES["gpu"],
        mem_mb=SCRNA_RESOURCES["mem_mb"],
    log:
        "logs/scrna/evaluate_{scd}_{scm}.log",
    conda:
        "../../envs/scrna.yaml"
    script:
        "../../scripts/scrna_evaluate.py"


rule scrna_eval:
    input:
        expand(f"{SCRNA_DIR}/{{scd}}/baselines.tsv", scd=SCRNA_DATASETS),
        [f"{SCRNA_DIR}/{d}/{m}/eval.tsv" for d, m in SCRNA_RUNS],
    output:
        report("results/scrna_eval.tsv", caption="../report/scrna_eval.rst", category="Single-cell"),
    params:
        made_with=scrna_made_with("scrna_eval"),  # rerun key: read by no script (settings_above)
    log:
        "logs/scrna/eval.log",
    conda:
        "../../envs/scrna.yaml"
    script:
        "../../scripts/scrna_combine.py"


rule scrna_plot:
    input:
        histories=[f"{SCRNA_DIR}/{d}/{m}/history.tsv" for d, m in SCRNA_RUNS],
        baselines=expand(f"{SCRNA_DIR}/{{scd}}/baselines.tsv", scd=SCRNA_DATASETS),
    output:
        report("results/scrna_loss_curves.png", caption="../report/scrna_loss_curves.rst", category="Single-cell"),
    params:
        made_with=scrna_made_with("scrna_plot"),  # rerun key: read by no script (settings_above)
        runs=[f"{d}/{m}/{SCRNA['models'][m]['binning']}" for d, m in SCRNA_RUNS],
        datasets=SCRNA_DATASETS,
    log:
        "logs/scrna/plot.log",
    conda:
        "../../envs/scrna.yaml"
    script:
        "../../scripts/scrna_plot.py"


rule scrna_embed_ingest:
    input:
        raw=scrna_raw_input,
    output:
        h5ad=f"{SCRNA_DIR}/embed/{{sce}}/counts.h5ad",
        summary=f"{SCRNA_DIR}/embed/{{sce}}/ingest_summary.json",
    params:
        made_with=lambda wc: scrna_made_with(f"scrna_embed_ingest/{wc.sce}"),  # rerun key: read by no script (settings_above)
        path=lambda wc: scrna_raw_path(wc.sce, True),
        options=lambda wc: scrna_ingest_options(wc.sce, True),
    log:
        "logs/scrna/embed_ingest_{sce}.log",
    conda:
        "../../envs/scrna.yaml"
    script:
        "../../scripts/scrna_ingest.py"


rule scrna_embed:
    input:
        h5ad=rules.scrna_embed_ingest.output.h5ad,
        best=f"{SCRNA_DIR}/{SCRNA_EMBED_RUN}/best",
        tokens=scrna_tokens(*SCRNA_EMBED_RUN.split("/")),
    output:
        h5ad="results/scrna/embed/{sce}.h5ad",
    params:
        made_with=lambda wc: scrna_made_with(f"scrna_embed/{wc.sce}"),  # rerun key: read by no script (settings_above)
        model=SCRNA_EMBED_RUN,
        on_unknown_gene=SCRNA_EMBED["on_unknown_gene"],
        options={k: SCRNA["evaluate"][k] for k in ("batch_size", "pca_components", "hvg_genes", "seed", "scvi")},
        device=SCRNA["train"]["device"],
    threads: SCRNA["threads"]
    log:
        "logs/scrna/embed_{sce}.log",
    conda:
        "../../envs/scrna.yaml"
    script:
        "../../scripts/scrna_embed.py"


rule scrna_embed_umap:
    input:
        h5ad=rules.scrna_embed.output.h5ad,
    output:
        report("results/scrna/embed/{sce}_umap.png", caption="../report/scrna_embed_umap.rst", category="Single-cell"),
    params:
        made_with=lambda wc: scrna_made_with(f"scrna_embed_umap/{wc.sce}"),  # rerun key: read by no script (settings_above)
        knn_k=SCRNA["evaluate"]["knn_k"],
        seed=SCRNA["evaluate"]["seed"],
    log:
        "logs/scrna/embed_umap_{sce}.log",
    conda:
        "../../envs/scrna.yaml"
    script:
        "../../scripts/scrna_embed.py"
