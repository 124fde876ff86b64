# Our model on a reference panel of your own (impute.targets.source: files, a model variant in targets.methods):
# each chromosome's panel VCF ingested (impute.ingest) with its population file (impute.reference.panel), its samples
# split into reference and validation (impute.split.validation_fraction, seed; no test samples: the targets are
# yours), cut into windows; the model's array is the phased targets' sites. One model per variant is trained on the
# windows of every chromosome (rule impute_targets_train) and imputes each chromosome (rule impute_targets_model).
# Every rule's one rerun key is made_with (impute_made_with, impute_common.smk): no script reads it.


rule impute_targets_ref_h5:
    input:
        vcf=impute_targets_reference,
        panel=lambda wc: IMPUTE["reference"]["panel"],
    output:
        h5=f"{TARGETS_DIR}/{{chrom}}/panel.h5",
    params:
        made_with=lambda wc: impute_made_with(f"impute_targets_ref_h5/{wc.chrom}"),  # rerun key: read by no script (settings_above)
        min_maf=0.0,  # every biallelic site of your panel: the model imputes each site the peers impute
        on_unphased=IMPUTE["ingest"]["on_unphased"],
        chunk_size=IMPUTE["ingest"]["chunk_size"],
        panel_subset=IMPUTE["ingest"]["panel_subset"],
        indels=IMPUTE["ingest"]["indels"],
    log:
        "logs/impute/targets_ref_h5_{chrom}.log",
    conda:
        "../../envs/impute.yaml"
    script:
        "../../scripts/impute_vcf_to_h5.py"


rule impute_targets_ref_split:
    input:
        h5=rules.impute_targets_ref_h5.output.h5,
    output:
        tsv=f"{TARGETS_DIR}/{{chrom}}/panel_split.tsv",
    params:
        made_with=lambda wc: impute_made_with(f"impute_targets_ref_split/{wc.chrom}"),  # rerun key: read by no script (settings_above)
        split=TARGETS_REF_SPLIT,
    log:
        "logs/impute/targets_ref_split_{chrom}.log",
    conda:
        "../../envs/impute.yaml"
    script:
        "../../scripts/impute_split.py"


rule impute_targets_ref_windows:
    input:
        h5=rules.impute_targets_ref_h5.output.h5,
    output:
        tsv=f"{TARGETS_DIR}/{{chrom}}/windows.tsv",
    params:
        made_with=lambda wc: impute_made_with(f"impute_targets_ref_windows/{wc.chrom}"),  # rerun key: read by no script (settings_above)
        sites=IMPUTE["windows"]["sites"],
        overlap=IMPUTE["windows"]["overlap"],
    log:
        "logs/impute/targets_ref_windows_{chrom}.log",
    conda:
        "../../envs/impute.yaml"
    script:
        "../../scripts/impute_windows.py"


rule impute_targets_ref_array:
    input:
        h5=rules.impute_targets_ref_h5.output.h5,
        targets=rules.impute_targets_phase.output.vcf,
    output:
        tsv=f"{TARGETS_DIR}/{{chrom}}/model_array.tsv",
    params:
        made_with=lambda wc: impute_made_with(f"impute_targets_ref_array/{wc.chrom}"),  # rerun key: read by no script (settings_above)
    log:
        "logs/impute/targets_ref_array_{chrom}.log",
    conda:
        "../../envs/impute.yaml"
    script:
        "../../scripts/impute_targets_ref_array.py"


rule impute_targets_train:
    input:
        h5=expand(rules.impute_targets_ref_h5.output.h5, chrom=TARGET_CHROMOSOMES),
        split=expand(rules.impute_targets_ref_split.output.tsv, chrom=TARGET_CHROMOSOMES),
        array=expand(rules.impute_targets_ref_array.output.tsv, chrom=TARGET_CHROMOSOMES),
        windows=expand(rules.impute_targets_ref_windows.output.tsv, chrom=TARGET_CHROMOSOMES),
        gmap=expand(f"{TARGETS_DIR}/{{chrom}}/genetic_map.plink.map", chrom=TARGET_CHROMOSOMES) if IMPUTE["reference"]["genetic_map"] else [],
    output:
        best=directory(f"{TARGETS_DIR}/model/{{variant}}/best"),
        history=f"{TARGETS_DIR}/model/{{variant}}/history.tsv",
        runtime=f"{TARGETS_DIR}/model/{{variant}}/train_runtime.json",
    params:
        made_with=lambda wc: impute_made_with(f"impute_targets_train/{wc.variant}"),  # rerun key: read by no script (settings_above)
        model=lambda wc: model_training(wc.variant),
        maf_bins=MODEL_VAL_MAF_BINS,
        work_dir=f"{TARGETS_DIR}/model/{{variant}}/work",
    threads: IMPUTE_MODEL["threads"]
    resources:
        gpu=MODEL_RESOURCES["gpu"],
        mem_mb=MODEL_RESOURCES["mem_mb"],
        runtime=MODEL_RESOURCES["runtime"],
    log:
        "logs/impute/targets_train_{variant}.log",
    conda:
        "../../envs/impute.yaml"
    script:
        "../../scripts/impute_targets_train.py"
