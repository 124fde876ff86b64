# Single-cell branch: count matrix -> checked counts + QC -> tokens per binning -> baselines, one cell transformer per
# (data set, model) -> results/scrna_eval.tsv + loss curves. Each model's resumable checkpoint lives in
# {dataset}/{model}/work/ (not a declared output), so a killed job resumes from work/last/ when the rule reruns.

include: "scrna_common.smk"


wildcard_constraints:
    scd="|".join(SCRNA_DATASETS),
    scm="|".join(SCRNA_MODELS),
    scb="|".join(SCRNA_BINNINGS),


rule scrna_all:
    input:
        "results/scrna_eval.tsv",
        "results/scrna_loss_curves.png",


rule scrna_fetch_scanpy:
    output:
        data=directory("resources/scrna/scanpy"),
    params:
        requirement=SCRNA["fetch"]["scanpy"],
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
        upstream=lambda wc: scrna_upstream(wc.scd),
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
        upstream=lambda wc: {b: scrna_upstream(wc.scd, b) for b in SCRNA_BINNINGS},
        binnings=SCRNA_BINNINGS,
        options={k: v for k, v in SCRNA["evaluate"].items() if k != "batch_size"},
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
        upstream=lambda wc: scrna_run_upstream(wc.scd, wc.scm),
        options=lambda wc: scrna_model_spec(wc.scm),
        work_dir=f"{SCRNA_DIR}/{{scd}}/{{scm}}/work",
    threads: SCRNA["threads"]
    resources:
        gpu=SCRNA_RESOURCES.get("gpu", 0),
        mem_mb=SCRNA_RESOURCES.get("mem_mb", 4000),
        runtime=SCRNA_RESOURCES.get("runtime", 30),
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
        upstream=lambda wc: scrna_run_upstream(wc.scd, wc.scm),  # as made_with, for the data steps
        options=lambda wc: {
            "binning": SCRNA["models"][wc.scm]["binning"],
            "device": SCRNA["train"].get("device", "auto"),
            **{k: SCRNA["evaluate"][k] for k in ("mask_fraction", "seed", "batch_size", "knn_k", "kmeans_n_init")},
        },
        # the model's training options too: a scrna_train job killed after an edit (Snakemake removed its
        # outputs) must not leave the old evaluation standing; Snakemake does not go back for it by itself
        made_with=lambda wc: scrna_model_spec(wc.scm),
    threads: SCRNA["threads"]
    resources:
        gpu=SCRNA_RESOURCES.get("gpu", 0),
        mem_mb=SCRNA_RESOURCES.get("mem_mb", 4000),
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
        upstream=SCRNA_ALL_UPSTREAM,  # see scrna_upstream
        made_with={m: scrna_model_spec(m) for m in dict.fromkeys(m for _, m in SCRNA_RUNS)},  # as scrna_evaluate
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
        upstream=SCRNA_ALL_UPSTREAM,  # see scrna_upstream
        made_with={m: scrna_model_spec(m) for m in dict.fromkeys(m for _, m in SCRNA_RUNS)},
        runs=[f"{d}/{m}/{SCRNA['models'][m]['binning']}" for d, m in SCRNA_RUNS],
        datasets=SCRNA_DATASETS,
    log:
        "logs/scrna/plot.log",
    conda:
        "../../envs/scrna.yaml"
    script:
        "../../scripts/scrna_plot.py"
