# Imputation model branch: train each retrieval-augmented BERT variant, impute the targets, plot curves.
# Variants (config impute.model.variants) are scored beside the peers by rule impute_evaluate.
# The training loop's resumable checkpoint lives in {variant}/model_work/ (not a declared output), so a
# killed job resumes from model_work/last/ when the rule reruns instead of Snakemake deleting it.

wildcard_constraints:
    variant="|".join(MODEL_VARIANTS) if MODEL_VARIANTS else "ragbert",


rule impute_model_all:
    input:
        expand(f"{IMPUTE_DIR}/{{variant}}/imputed.vcf.gz", variant=MODEL_VARIANTS),
        "results/impute_training_curves.png" if MODEL_VARIANTS else [],


rule impute_train:
    input:
        h5=rules.impute_vcf_to_h5.output.h5,
        split=rules.impute_split.output.tsv,
        array=rules.impute_array_sites.output.tsv,
        windows=rules.impute_windows.output.tsv,
        gmap=impute_plink_map,
    output:
        best=directory(f"{IMPUTE_DIR}/{{variant}}/model/best"),
        history=f"{IMPUTE_DIR}/{{variant}}/model/history.tsv",
        runtime=f"{IMPUTE_DIR}/{{variant}}/model/train_runtime.json",
    params:
        made_with=lambda wc: impute_made_with(f"impute_train/{wc.variant}"),  # rerun key: read by no script (settings_above)
        model=lambda wc: model_training(wc.variant),
        maf_bins=MODEL_VAL_MAF_BINS,
        work_dir=f"{IMPUTE_DIR}/{{variant}}/model_work",
    threads: IMPUTE_MODEL["threads"]
    resources:
        gpu=MODEL_RESOURCES["gpu"],
        mem_mb=MODEL_RESOURCES["mem_mb"],
        runtime=MODEL_RESOURCES["runtime"],
    log:
        "logs/impute/train_{variant}.log",
    conda:
        "../../envs/impute.yaml"
    script:
        "../../scripts/impute_train_ragbert.py"


rule impute_ragbert:
    input:
        h5=rules.impute_vcf_to_h5.output.h5,
        split=rules.impute_split.output.tsv,
        target=impute_phased_targets,
        windows=rules.impute_windows.output.tsv,
        best=rules.impute_train.output.best,
        train_runtime=rules.impute_train.output.runtime,
        gmap=impute_plink_map,
    output:
        vcf=f"{IMPUTE_DIR}/{{variant}}/imputed.vcf.gz",
        tbi=f"{IMPUTE_DIR}/{{variant}}/imputed.vcf.gz.tbi",
        runtime=f"{IMPUTE_DIR}/{{variant}}/runtime.json",
    params:
        made_with=lambda wc: impute_made_with(f"impute_ragbert/{wc.variant}"),  # rerun key: read by no script (settings_above)
        batch_size=IMPUTE_MODEL["predict_batch_size"],
        cpu_bf16=IMPUTE_MODEL["predict_cpu_bf16"],
        skip_confident=IMPUTE_MODEL["predict_skip_confident"],
        device=IMPUTE_MODEL["train"]["device"],
    threads: IMPUTE_MODEL["threads"]
    resources:
        gpu=MODEL_RESOURCES["gpu"],
        mem_mb=MODEL_RESOURCES["mem_mb"],
    log:
        "logs/impute/impute_{variant}.log",
    conda:
        "../../envs/impute.yaml"
    script:
        "../../scripts/impute_ragbert.py"


rule impute_plot_training:
    input:
        histories=expand(f"{IMPUTE_DIR}/{{variant}}/model/history.tsv", variant=MODEL_VARIANTS),
    output:
        report(
            "results/impute_training_curves.png",
            caption="../report/impute_training.rst",
            category="Imputation",
        ),
    params:
        made_with=impute_made_with("impute_plot_training"),  # rerun key: read by no script (settings_above)
        variants=MODEL_VARIANTS,
        metric=IMPUTE_MODEL["train"]["early_stopping_metric"],
    log:
        "logs/impute/plot_training_curves.log",
    conda:
        "../../envs/impute.yaml"
    script:
        "../../scripts/impute_plot_training.py"
