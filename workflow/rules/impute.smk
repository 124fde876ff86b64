# Imputation branch: raw VCF -> HDF5 -> split/array -> peer tools -> evaluation table + plot.
# Every rule's one rerun key is made_with (impute_made_with, impute_common.smk): no script reads it.


rule impute_all:
    input:
        "results/impute_eval.tsv",
        "results/impute_r2_by_maf.png",
        f"{IMPUTE_DIR}/windows.tsv",


rule impute_simulate:
    output:
        vcf="resources/impute/simulated/panel.vcf.gz",
        tbi="resources/impute/simulated/panel.vcf.gz.tbi",
        panel="resources/impute/simulated/panel.txt",
    params:
        sim=IMPUTE["simulate"],
    log:
        "logs/impute/simulate_panel.log",
    conda:
        "../../envs/impute.yaml"
    script:
        "../../scripts/impute_simulate.py"


rule impute_vcf_to_h5:
    input:
        vcf=impute_raw_vcf,
        panel=impute_raw_panel,
    output:
        h5=f"{IMPUTE_DIR}/panel.h5",
    params:
        made_with=impute_made_with("impute_vcf_to_h5"),  # rerun key: read by no script (settings_above)
        min_maf=IMPUTE["ingest"]["min_maf"],
        on_unphased=IMPUTE["ingest"]["on_unphased"],
        chunk_size=IMPUTE["ingest"]["chunk_size"],
        panel_subset=IMPUTE["ingest"]["panel_subset"],
        indels=IMPUTE["ingest"]["indels"],
    log:
        "logs/impute/vcf_to_h5.log",
    conda:
        "../../envs/impute.yaml"
    script:
        "../../scripts/impute_vcf_to_h5.py"


rule impute_windows:
    input:
        h5=rules.impute_vcf_to_h5.output.h5,
    output:
        tsv=f"{IMPUTE_DIR}/windows.tsv",
    params:
        made_with=impute_made_with("impute_windows"),  # rerun key: read by no script (settings_above)
        sites=IMPUTE["windows"]["sites"],
        overlap=IMPUTE["windows"]["overlap"],
    log:
        "logs/impute/windows.log",
    conda:
        "../../envs/impute.yaml"
    script:
        "../../scripts/impute_windows.py"


rule impute_split:
    input:
        h5=rules.impute_vcf_to_h5.output.h5,
    output:
        tsv=f"{IMPUTE_DIR}/split.tsv",
    params:
        made_with=impute_made_with("impute_split"),  # rerun key: read by no script (settings_above)
        split=IMPUTE_SPLIT,
    log:
        "logs/impute/split_samples.log",
    conda:
        "../../envs/impute.yaml"
    script:
        "../../scripts/impute_split.py"


rule impute_array_sites:
    input:
        h5=rules.impute_vcf_to_h5.output.h5,
        split=rules.impute_split.output.tsv,
    output:
        tsv=f"{IMPUTE_DIR}/array_sites.tsv",
    params:
        made_with=impute_made_with("impute_array_sites"),  # rerun key: read by no script (settings_above)
        array=IMPUTE["array"],
    log:
        "logs/impute/array_sites.log",
    conda:
        "../../envs/impute.yaml"
    script:
        "../../scripts/impute_array_sites.py"


rule impute_panel_vcf:
    input:
        h5=rules.impute_vcf_to_h5.output.h5,
        split=rules.impute_split.output.tsv,
    output:
        vcf=f"{IMPUTE_DIR}/inputs/panel.vcf.gz",
        tbi=f"{IMPUTE_DIR}/inputs/panel.vcf.gz.tbi",
    params:
        made_with=impute_made_with("impute_panel_vcf"),  # rerun key: read by no script (settings_above)
    log:
        "logs/impute/panel_vcf.log",
    conda:
        "../../envs/impute.yaml"
    script:
        "../../scripts/impute_panel_vcf.py"


rule impute_target_vcf:
    input:
        h5=rules.impute_vcf_to_h5.output.h5,
        split=rules.impute_split.output.tsv,
        array=rules.impute_array_sites.output.tsv,
    output:
        vcf=f"{IMPUTE_DIR}/inputs/targets.vcf.gz",
        tbi=f"{IMPUTE_DIR}/inputs/targets.vcf.gz.tbi",
    params:
        made_with=impute_made_with("impute_target_vcf"),  # rerun key: read by no script (settings_above)
        phased=TARGETS_PHASED,
    log:
        "logs/impute/target_vcf.log",
    conda:
        "../../envs/impute.yaml"
    script:
        "../../scripts/impute_target_vcf.py"


# impute.split.targets_phased false: the unphased array targets phased against the panel (Beagle impute=false),
# as a user's targets are (impute_targets_phase); every method then reads this file (impute_phased_targets)
rule impute_phase_targets:
    input:
        targets=rules.impute_target_vcf.output.vcf,
        ref=rules.impute_panel_vcf.output.vcf,
        gmap=impute_plink_map,
    output:
        vcf=f"{IMPUTE_DIR}/inputs/targets.phased.vcf.gz",
        tbi=f"{IMPUTE_DIR}/inputs/targets.phased.vcf.gz.tbi",
    params:
        made_with=impute_made_with("impute_phase_targets"),  # rerun key: read by no script (settings_above)
        mem_gb=IMPUTE_BASELINES["beagle_mem_gb"],
        ne=IMPUTE_BASELINES["beagle_ne"],
        seed=IMPUTE_BASELINES["seed"],
    threads: IMPUTE_BASELINES["threads"]
    resources:
        mem_mb=lambda wc: 1024 * (IMPUTE_BASELINES["beagle_mem_gb"] + 1),
    log:
        "logs/impute/phase_targets.log",
    conda:
        "../../envs/impute.yaml"
    script:
        "../../scripts/impute_targets_phase.py"


rule impute_genetic_map:
    input:
        gmap=lambda wc: IMPUTE["data"]["genetic_map"],
        h5=rules.impute_vcf_to_h5.output.h5,
    output:
        plink=f"{IMPUTE_DIR}/inputs/genetic_map.plink.map",
    params:
        made_with=impute_made_with("impute_genetic_map"),  # rerun key: read by no script (settings_above)
    log:
        "logs/impute/genetic_map.log",
    conda:
        "../../envs/impute.yaml"
    script:
        "../../scripts/impute_genetic_map.py"


rule impute_beagle:
    input:
        ref=rules.impute_panel_vcf.output.vcf,
        target=impute_phased_targets,
        gmap=impute_plink_map,
    output:
        vcf=f"{IMPUTE_DIR}/beagle/imputed.vcf.gz",
        tbi=f"{IMPUTE_DIR}/beagle/imputed.vcf.gz.tbi",
        runtime=f"{IMPUTE_DIR}/beagle/runtime.json",
    params:
        made_with=impute_made_with("impute_beagle"),  # rerun key: read by no script (settings_above)
        mem_gb=IMPUTE_BASELINES["beagle_mem_gb"],
        ne=IMPUTE_BASELINES["beagle_ne"],
        seed=IMPUTE_BASELINES["seed"],
    threads: IMPUTE_BASELINES["threads"]
    resources:
        mem_mb=lambda wc: 1024 * (IMPUTE_BASELINES["beagle_mem_gb"] + 1),
    log:
        "logs/impute/beagle.log",
    benchmark:
        f"{IMPUTE_DIR}/benchmarks/beagle.tsv"
    conda:
        "../../envs/impute.yaml"
    script:
        "../../scripts/impute_beagle.py"


rule impute_minimac4_compress:
    input:
        ref=rules.impute_panel_vcf.output.vcf,
    output:
        msav=f"{IMPUTE_DIR}/minimac4/panel.msav",
    threads: IMPUTE_BASELINES["threads"]
    params:
        made_with=impute_made_with("impute_minimac4_compress"),  # rerun key: read by no script (settings_above)
    log:
        "logs/impute/minimac4_compress.log",
    conda:
        "../../envs/impute.yaml"
    script:
        "../../scripts/impute_minimac4_compress.py"


rule impute_minimac4:
    input:
        msav=rules.impute_minimac4_compress.output.msav,
        target=impute_phased_targets,
        gmap=impute_plink_map,
    output:
        vcf=f"{IMPUTE_DIR}/minimac4/imputed.vcf.gz",
        tbi=f"{IMPUTE_DIR}/minimac4/imputed.vcf.gz.tbi",
        runtime=f"{IMPUTE_DIR}/minimac4/runtime.json",
    threads: IMPUTE_BASELINES["threads"]
    params:
        made_with=impute_made_with("impute_minimac4"),  # rerun key: read by no script (settings_above)
    log:
        "logs/impute/minimac4.log",
    benchmark:
        f"{IMPUTE_DIR}/benchmarks/minimac4.tsv"
    conda:
        "../../envs/impute.yaml"
    script:
        "../../scripts/impute_minimac4.py"


rule impute_af_floor:
    input:
        h5=rules.impute_vcf_to_h5.output.h5,
        split=rules.impute_split.output.tsv,
    output:
        vcf=f"{IMPUTE_DIR}/af_floor/imputed.vcf.gz",
        tbi=f"{IMPUTE_DIR}/af_floor/imputed.vcf.gz.tbi",
        runtime=f"{IMPUTE_DIR}/af_floor/runtime.json",
    params:
        made_with=impute_made_with("impute_af_floor"),  # rerun key: read by no script (settings_above)
    log:
        "logs/impute/af_floor.log",
    conda:
        "../../envs/impute.yaml"
    script:
        "../../scripts/impute_af_floor.py"


rule impute_evaluate:
    input:
        h5=rules.impute_vcf_to_h5.output.h5,
        split=rules.impute_split.output.tsv,
        array=rules.impute_array_sites.output.tsv,
        vcf=f"{IMPUTE_DIR}/{{method}}/imputed.vcf.gz",
        runtime=f"{IMPUTE_DIR}/{{method}}/runtime.json",
    output:
        tsv=f"{IMPUTE_DIR}/eval/{{method}}.tsv",
    params:
        made_with=lambda wc: impute_made_with(f"impute_evaluate/{wc.method}"),  # rerun key: read by no script (settings_above)
        evaluate=IMPUTE["evaluate"],
    wildcard_constraints:
        method="[A-Za-z0-9_]+",
    log:
        "logs/impute/evaluate_{method}.log",
    conda:
        "../../envs/impute.yaml"
    script:
        "../../scripts/impute_evaluate.py"


rule impute_eval:
    input:
        expand(f"{IMPUTE_DIR}/eval/{{method}}.tsv", method=IMPUTE_METHODS),
    output:
        report(
            "results/impute_eval.tsv",
            caption="../report/impute_eval.rst",
            category="Imputation",
        ),
    params:
        made_with=impute_made_with("impute_eval"),  # rerun key: read by no script (settings_above)
    log:
        "logs/impute/impute_eval.log",
    conda:
        "../../envs/impute.yaml"
    script:
        "../../scripts/impute_combine.py"


rule impute_plot:
    input:
        tsv="results/impute_eval.tsv",
    output:
        report(
            "results/impute_r2_by_maf.png",
            caption="../report/impute_r2_by_maf.rst",
            category="Imputation",
        ),
    params:
        made_with=impute_made_with("impute_plot"),  # rerun key: read by no script (settings_above)
    log:
        "logs/impute/plot_impute_eval.log",
    conda:
        "../../envs/impute.yaml"
    script:
        "../../scripts/impute_plot.py"
