# Imputation model branch: train each retrieval-augmented BERT variant, impute the targets, plot curves.
# Variants (config impute.model.variants) are scored beside the peers by rule evaluate_imputation.
# The training loop's resumable checkpoint lives in {variant}/model_work/ (not a declared output), so a
# killed job resumes from model_work/last/ when the rule reruns instead of Snakemake deleting it.

IMPUTE_MODEL = IMPUTE.get("model") or {}
MODEL_VARIANTS = list(IMPUTE_MODEL.get("variants") or []) if IMPUTE_MODEL.get("enabled", True) else []
MODEL_RESOURCES = IMPUTE_MODEL.get("resources") or {}
MODEL_THREADS = IMPUTE_MODEL.get("threads", 1)


wildcard_constraints:
    variant="|".join(MODEL_VARIANTS) if MODEL_VARIANTS else "ragbert",


rule impute_model_all:
    input:
        expand(f"{IMPUTE_DIR}/{{variant}}/imputed.vcf.gz", variant=MODEL_VARIANTS),
        "results/impute_training_curves.png" if MODEL_VARIANTS else [],


rule train_ragbert:
    input:
        h5=rules.vcf_to_h5.output.h5,
        split=rules.split_samples.output.tsv,
        array=rules.array_sites.output.tsv,
        windows=rules.windows.output.tsv,
        gmap=impute_genetic_map,
    output:
        best=directory(f"{IMPUTE_DIR}/{{variant}}/model/best"),
        history=f"{IMPUTE_DIR}/{{variant}}/model/history.tsv",
        runtime=f"{IMPUTE_DIR}/{{variant}}/model/train_runtime.json",
    params:
        model=IMPUTE_MODEL,
        upstream=impute_upstream("data", "ingest", "windows", "split", "array"),
        maf_bins=IMPUTE_MODEL.get("val_maf_bins", IMPUTE["evaluate"]["maf_bins"]),
        work_dir=f"{IMPUTE_DIR}/{{variant}}/model_work",
    threads: MODEL_THREADS
    resources:
        gpu=MODEL_RESOURCES.get("gpu", 0),
        mem_mb=MODEL_RESOURCES.get("mem_mb", 4000),
        runtime=MODEL_RESOURCES.get("runtime", 60),
    log:
        "logs/impute/train_{variant}.log",
    conda:
        "../../envs/impute.yaml"
    script:
        "../../scripts/impute_train_ragbert.py"


rule impute_ragbert:
    input:
        h5=rules.vcf_to_h5.output.h5,
        split=rules.split_samples.output.tsv,
        target=rules.target_vcf.output.vcf,
        windows=rules.windows.output.tsv,
        best=rules.train_ragbert.output.best,
        train_runtime=rules.train_ragbert.output.runtime,
        gmap=impute_genetic_map,
    output:
        vcf=f"{IMPUTE_DIR}/{{variant}}/imputed.vcf.gz",
        tbi=f"{IMPUTE_DIR}/{{variant}}/imputed.vcf.gz.tbi",
        runtime=f"{IMPUTE_DIR}/{{variant}}/runtime.json",
    params:
        model=IMPUTE_MODEL,  # a killed train_ragbert after a model change still reruns (impute_method_settings)
        upstream=impute_upstream("data", "ingest", "windows", "split", "array"),
        batch_size=IMPUTE_MODEL.get("batch_size", 64),
        device=(IMPUTE_MODEL.get("train") or {}).get("device", "auto"),
    threads: MODEL_THREADS
    resources:
        gpu=MODEL_RESOURCES.get("gpu", 0),
        mem_mb=MODEL_RESOURCES.get("mem_mb", 4000),
    log:
        "logs/impute/impute_{variant}.log",
    conda:
        "../../envs/impute.yaml"
    script:
        "../../scripts/impute_ragbert.py"


rule plot_training_curves:
    input:
        histories=expand(f"{IMPUTE_DIR}/{{variant}}/model/history.tsv", variant=MODEL_VARIANTS),
    output:
        report(
            "results/impute_training_curves.png",
            caption="../report/impute_training.rst",
            category="Imputation",
        ),
    params:
        variants=MODEL_VARIANTS,
        made_with={v: impute_method_settings(v) for v in MODEL_VARIANTS},  # see impute_method_settings
        metric=(IMPUTE_MODEL.get("train") or {}).get("early_stopping_metric", "val_loss"),
    log:
        "logs/impute/plot_training_curves.log",
    conda:
        "../../envs/impute.yaml"
    script:
        "../../scripts/impute_plot_training.py"
