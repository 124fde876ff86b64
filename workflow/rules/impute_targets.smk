# Imputing your own samples, per chromosome: array VCF -> QC against the panel -> phasing (Beagle impute=false)
# -> chunks (checkpoint) -> every method per chunk -> the chunks' cores gathered into one indexed VCF per
# chromosome and method (results/imputed/<method>/<chrom>.vcf.gz) -> scored against truth where there is one.
# The default config's targets are the held-out test samples written as an array gives them (impute.targets).
# Every rule's one rerun key is made_with (impute_made_with, impute_common.smk): no script reads it.

wildcard_constraints:
    chrom="|".join(TARGET_CHROMOSOMES) or "no_target_chromosome",
    tmethod="|".join(TARGET_METHODS),
    chunk="[A-Za-z0-9_.]+_[0-9]+",


rule impute_targets_all:
    input:
        expand("results/imputed/{tmethod}/{chrom}.vcf.gz", tmethod=TARGET_METHODS, chrom=TARGET_CHROMOSOMES),
        "results/impute_targets_eval.tsv" if TARGETS_TRUTH else [],
        "results/impute_targets_r2_along.png" if TARGETS_TRUTH else [],


rule impute_targets_simulate:
    output:
        ref=f"{TARGETS_SIM_DIR}/ref.{{chrom}}.vcf.gz",
        ref_tbi=f"{TARGETS_SIM_DIR}/ref.{{chrom}}.vcf.gz.tbi",
        targets=f"{TARGETS_SIM_DIR}/targets.{{chrom}}.vcf.gz",
        targets_tbi=f"{TARGETS_SIM_DIR}/targets.{{chrom}}.vcf.gz.tbi",
        truth=f"{TARGETS_SIM_DIR}/truth.{{chrom}}.vcf.gz",
        truth_tbi=f"{TARGETS_SIM_DIR}/truth.{{chrom}}.vcf.gz.tbi",
    params:
        made_with=lambda wc: impute_made_with(f"impute_targets_simulate/{wc.chrom}"),  # rerun key: read by no script (settings_above)
        sim=lambda wc: {**_SIM_MODEL, **IMPUTE_TARGETS["simulate"]["contigs"][wc.chrom], "contig": wc.chrom,
                        "targets_per_population": IMPUTE_TARGETS["simulate"]["targets_per_population"],
                        "seed": impute_targets_sim_seed(wc.chrom)},
    log:
        "logs/impute/targets_simulate_{chrom}.log",
    conda:
        "../../envs/impute.yaml"
    script:
        "../../scripts/impute_targets_simulate.py"


rule impute_targets_simulate_panel:
    output:
        panel=f"{TARGETS_SIM_DIR}/panel.txt",
    params:
        populations=IMPUTE["simulate"]["populations"],
        super_populations=IMPUTE["simulate"].get("super_populations") or {},
        targets_per_population=IMPUTE_TARGETS["simulate"]["targets_per_population"],
    log:
        "logs/impute/targets_simulate_panel.log",
    conda:
        "../../envs/impute.yaml"
    script:
        "../../scripts/impute_targets_simulate.py"


rule impute_targets_heldout:
    input:
        h5=rules.impute_vcf_to_h5.output.h5,
        split=rules.impute_split.output.tsv,
        array=rules.impute_array_sites.output.tsv,
    output:
        targets=f"{TARGETS_DIR}/inputs/targets.vcf.gz",
        targets_tbi=f"{TARGETS_DIR}/inputs/targets.vcf.gz.tbi",
        truth=f"{TARGETS_DIR}/inputs/truth.vcf.gz",
        truth_tbi=f"{TARGETS_DIR}/inputs/truth.vcf.gz.tbi",
    params:
        made_with=impute_made_with("impute_targets_heldout"),  # rerun key: read by no script (settings_above)
        phased=IMPUTE_TARGETS["phased"],
    log:
        "logs/impute/targets_heldout.log",
    conda:
        "../../envs/impute.yaml"
    script:
        "../../scripts/impute_targets_heldout.py"


rule impute_targets_genetic_map:
    input:
        gmap=lambda wc: _per_chrom(IMPUTE["reference"]["genetic_map"], wc.chrom),
    output:
        plink=f"{TARGETS_DIR}/{{chrom}}/genetic_map.plink.map",
    log:
        "logs/impute/targets_genetic_map_{chrom}.log",
    conda:
        "../../envs/impute.yaml"
    script:
        "../../scripts/impute_targets_genetic_map.py"


rule impute_targets_array:
    input:
        targets=impute_targets_raw_vcf,
        ref=impute_targets_reference,
    output:
        vcf=f"{TARGETS_DIR}/{{chrom}}/array.vcf.gz",
        tbi=f"{TARGETS_DIR}/{{chrom}}/array.vcf.gz.tbi",
    params:
        made_with=lambda wc: impute_made_with(f"impute_targets_array/{wc.chrom}"),  # rerun key: read by no script (settings_above)
        array_sites=IMPUTE_TARGETS["array_sites"],
    log:
        "logs/impute/targets_array_{chrom}.log",
    conda:
        "../../envs/impute.yaml"
    script:
        "../../scripts/impute_targets_array.py"


rule impute_targets_qc:
    input:
        targets=impute_targets_vcf,
        ref=impute_targets_reference,
    output:
        vcf=f"{TARGETS_DIR}/{{chrom}}/qc.vcf.gz",
        tbi=f"{TARGETS_DIR}/{{chrom}}/qc.vcf.gz.tbi",
        tsv=report(f"{TARGETS_DIR}/{{chrom}}/qc.tsv", caption="../report/impute_targets_qc.rst", category="Imputation"),
        summary=f"{TARGETS_DIR}/{{chrom}}/qc.summary.json",
    params:
        made_with=lambda wc: impute_made_with(f"impute_targets_qc/{wc.chrom}"),  # rerun key: read by no script (settings_above)
        qc=IMPUTE_TARGETS["qc"],
    log:
        "logs/impute/targets_qc_{chrom}.log",
    conda:
        "../../envs/impute.yaml"
    script:
        "../../scripts/impute_targets_qc.py"


rule impute_targets_phase:
    input:
        targets=rules.impute_targets_qc.output.vcf,
        ref=impute_targets_reference,
        gmap=impute_targets_gmap,
    output:
        vcf=f"{TARGETS_DIR}/{{chrom}}/phased.vcf.gz",
        tbi=f"{TARGETS_DIR}/{{chrom}}/phased.vcf.gz.tbi",
    params:
        made_with=lambda wc: impute_made_with(f"impute_targets_phase/{wc.chrom}"),  # rerun key: read by no script (settings_above)
        mem_gb=IMPUTE_BASELINES["beagle_mem_gb"],
        ne=IMPUTE_BASELINES["beagle_ne"],
        seed=IMPUTE_BASELINES["seed"],
    threads: IMPUTE_BASELINES["threads"]
    resources:
        mem_mb=lambda wc: 1024 * (IMPUTE_BASELINES["beagle_mem_gb"] + 1),
    log:
        "logs/impute/targets_phase_{chrom}.log",
    conda:
        "../../envs/impute.yaml"
    script:
        "../../scripts/impute_targets_phase.py"


checkpoint impute_targets_chunks:
    input:
        targets=rules.impute_targets_phase.output.vcf,
        ref=impute_targets_reference,
    output:
        tsv=f"{TARGETS_DIR}/{{chrom}}/chunks.tsv",
    params:
        made_with=lambda wc: impute_made_with(f"impute_targets_chunks/{wc.chrom}"),  # rerun key: read by no script (settings_above)
        chunks=IMPUTE_TARGETS["chunks"],
    log:
        "logs/impute/targets_chunks_{chrom}.log",
    conda:
        "../../envs/impute.yaml"
    script:
        "../../scripts/impute_targets_chunks.py"


rule impute_targets_minimac4_compress:
    input:
        ref=impute_targets_reference,
    output:
        msav=f"{TARGETS_DIR}/{{chrom}}/minimac4/panel.msav",
    params:
        made_with=lambda wc: impute_made_with(f"impute_targets_minimac4_compress/{wc.chrom}"),  # rerun key: read by no script (settings_above)
    threads: IMPUTE_BASELINES["threads"]
    log:
        "logs/impute/targets_minimac4_compress_{chrom}.log",
    conda:
        "../../envs/impute.yaml"
    script:
        "../../scripts/impute_minimac4_compress.py"


rule impute_targets_beagle:
    input:
        chunks=f"{TARGETS_DIR}/{{chrom}}/chunks.tsv",
        target=rules.impute_targets_phase.output.vcf,
        ref=impute_targets_reference,
        gmap=impute_targets_gmap,
    output:
        vcf=f"{TARGETS_DIR}/{{chrom}}/beagle/{{chunk}}.vcf.gz",
        tbi=f"{TARGETS_DIR}/{{chrom}}/beagle/{{chunk}}.vcf.gz.tbi",
    params:
        made_with=lambda wc: impute_made_with(f"impute_targets_beagle/{wc.chrom}"),  # rerun key: read by no script (settings_above)
        mem_gb=IMPUTE_BASELINES["beagle_mem_gb"],
        ne=IMPUTE_BASELINES["beagle_ne"],
        seed=IMPUTE_BASELINES["seed"],
    threads: IMPUTE_BASELINES["threads"]
    resources:
        mem_mb=lambda wc: 1024 * (IMPUTE_BASELINES["beagle_mem_gb"] + 1),
    log:
        "logs/impute/targets_beagle_{chrom}_{chunk}.log",
    conda:
        "../../envs/impute.yaml"
    script:
        "../../scripts/impute_targets_chunk.py"


rule impute_targets_minimac4:
    input:
        chunks=f"{TARGETS_DIR}/{{chrom}}/chunks.tsv",
        target=rules.impute_targets_phase.output.vcf,
        msav=rules.impute_targets_minimac4_compress.output.msav,
        gmap=impute_targets_gmap,
    output:
        vcf=f"{TARGETS_DIR}/{{chrom}}/minimac4/{{chunk}}.vcf.gz",
        tbi=f"{TARGETS_DIR}/{{chrom}}/minimac4/{{chunk}}.vcf.gz.tbi",
    params:
        made_with=lambda wc: impute_made_with(f"impute_targets_minimac4/{wc.chrom}"),  # rerun key: read by no script (settings_above)
    threads: IMPUTE_BASELINES["threads"]
    log:
        "logs/impute/targets_minimac4_{chrom}_{chunk}.log",
    conda:
        "../../envs/impute.yaml"
    script:
        "../../scripts/impute_targets_chunk.py"


rule impute_targets_gather:
    wildcard_constraints:
        tmethod="|".join(TARGET_PEERS) or "beagle",
    input:
        cores=impute_targets_cores,
    output:
        vcf="results/imputed/{tmethod}/{chrom}.vcf.gz",
        tbi="results/imputed/{tmethod}/{chrom}.vcf.gz.tbi",
    params:
        made_with=lambda wc: impute_made_with(f"impute_targets_gather/{wc.tmethod}/{wc.chrom}"),  # rerun key: read by no script (settings_above)
    log:
        "logs/impute/targets_gather_{tmethod}_{chrom}.log",
    conda:
        "../../envs/impute.yaml"
    script:
        "../../scripts/impute_targets_gather.py"


rule impute_targets_model:
    wildcard_constraints:
        tmethod="|".join(TARGET_MODELS) or "ragbert",
    input:
        h5=lambda wc: impute_targets_model_input(wc, "h5"),
        split=lambda wc: impute_targets_model_input(wc, "split"),
        target=rules.impute_targets_phase.output.vcf,
        windows=lambda wc: impute_targets_model_input(wc, "windows"),
        best=lambda wc: impute_targets_model_input(wc, "best"),
        train_runtime=lambda wc: impute_targets_model_input(wc, "train_runtime"),
        gmap=impute_targets_gmap,
    output:
        vcf="results/imputed/{tmethod}/{chrom}.vcf.gz",
        tbi="results/imputed/{tmethod}/{chrom}.vcf.gz.tbi",
        runtime=f"{TARGETS_DIR}/{{chrom}}/{{tmethod}}/runtime.json",
    params:
        made_with=lambda wc: impute_made_with(f"impute_targets_gather/{wc.tmethod}/{wc.chrom}"),  # rerun key: read by no script (settings_above)
        batch_size=IMPUTE_MODEL["predict_batch_size"],
        cpu_bf16=IMPUTE_MODEL["predict_cpu_bf16"],
        skip_confident=IMPUTE_MODEL["predict_skip_confident"],
        device=IMPUTE_MODEL["train"]["device"],
        skip_absent=not TARGETS_HELDOUT,  # your targets may hold sites the ingested panel dropped (impute.ingest.min_maf)
    threads: IMPUTE_MODEL["threads"]
    resources:
        gpu=MODEL_RESOURCES["gpu"],
        mem_mb=MODEL_RESOURCES["mem_mb"],
    log:
        "logs/impute/targets_model_{tmethod}_{chrom}.log",
    conda:
        "../../envs/impute.yaml"
    script:
        "../../scripts/impute_targets_model.py"


rule impute_targets_evaluate:
    input:
        vcf="results/imputed/{tmethod}/{chrom}.vcf.gz",
        truth=impute_targets_truth,
        ref=impute_targets_reference,
        qc=rules.impute_targets_qc.output.tsv,
    output:
        tsv=f"{TARGETS_DIR}/eval/{{tmethod}}/{{chrom}}.tsv",
    params:
        made_with=lambda wc: impute_made_with(f"impute_targets_evaluate/{wc.tmethod}/{wc.chrom}"),  # rerun key: read by no script (settings_above)
        evaluate=IMPUTE["evaluate"],
        snps_only=TARGETS_SNPS_ONLY,  # with our model in the table and impute.ingest.indels false: every method scored on the biallelic SNPs
    log:
        "logs/impute/targets_evaluate_{tmethod}_{chrom}.log",
    conda:
        "../../envs/impute.yaml"
    script:
        "../../scripts/impute_targets_evaluate.py"


rule impute_targets_eval:
    input:
        expand(f"{TARGETS_DIR}/eval/{{tmethod}}/{{chrom}}.tsv", tmethod=TARGET_METHODS, chrom=TARGET_CHROMOSOMES),
    output:
        report("results/impute_targets_eval.tsv", caption="../report/impute_targets_eval.rst", category="Imputation"),
    params:
        made_with=impute_made_with("impute_targets_eval"),  # rerun key: read by no script (settings_above)
    log:
        "logs/impute/targets_eval.log",
    conda:
        "../../envs/impute.yaml"
    script:
        "../../scripts/impute_targets_combine.py"
