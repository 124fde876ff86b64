# Imputation branch: raw VCF -> HDF5 -> split/array -> peer tools -> evaluation table + plot.


rule impute_all:
    input:
        "results/impute_eval.tsv",
        "results/impute_r2_by_maf.png",
        f"{IMPUTE_DIR}/windows.tsv",


rule simulate_panel:
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


rule vcf_to_h5:
    input:
        vcf=impute_raw_vcf,
        panel=impute_raw_panel,
    output:
        h5=f"{IMPUTE_DIR}/panel.h5",
    params:
        upstream=impute_upstream("data"),
        min_maf=IMPUTE["ingest"]["min_maf"],
        on_unphased=IMPUTE["ingest"]["on_unphased"],
        chunk_size=IMPUTE["ingest"]["chunk_size"],
        panel_subset=IMPUTE["ingest"].get("panel_subset", False),
    log:
        "logs/impute/vcf_to_h5.log",
    conda:
        "../../envs/impute.yaml"
    script:
        "../../scripts/impute_vcf_to_h5.py"


rule windows:
    input:
        h5=rules.vcf_to_h5.output.h5,
    output:
        tsv=f"{IMPUTE_DIR}/windows.tsv",
    params:
        upstream=impute_upstream("data", "ingest"),
        sites=IMPUTE["windows"]["sites"],
        overlap=IMPUTE["windows"]["overlap"],
    log:
        "logs/impute/windows.log",
    conda:
        "../../envs/impute.yaml"
    script:
        "../../scripts/impute_windows.py"


rule split_samples:
    input:
        h5=rules.vcf_to_h5.output.h5,
    output:
        tsv=f"{IMPUTE_DIR}/split.tsv",
    params:
        upstream=impute_upstream("data", "ingest"),
        split=IMPUTE["split"],
    log:
        "logs/impute/split_samples.log",
    conda:
        "../../envs/impute.yaml"
    script:
        "../../scripts/impute_split.py"


rule array_sites:
    input:
        h5=rules.vcf_to_h5.output.h5,
        split=rules.split_samples.output.tsv,
    output:
        tsv=f"{IMPUTE_DIR}/array_sites.tsv",
    params:
        upstream=impute_upstream("data", "ingest", "split"),
        array=IMPUTE["array"],
    log:
        "logs/impute/array_sites.log",
    conda:
        "../../envs/impute.yaml"
    script:
        "../../scripts/impute_array_sites.py"


rule panel_vcf:
    input:
        h5=rules.vcf_to_h5.output.h5,
        split=rules.split_samples.output.tsv,
    output:
        vcf=f"{IMPUTE_DIR}/inputs/panel.vcf.gz",
        tbi=f"{IMPUTE_DIR}/inputs/panel.vcf.gz.tbi",
    params:
        upstream=impute_upstream("data", "ingest", "split"),
    log:
        "logs/impute/panel_vcf.log",
    conda:
        "../../envs/impute.yaml"
    script:
        "../../scripts/impute_panel_vcf.py"


rule target_vcf:
    input:
        h5=rules.vcf_to_h5.output.h5,
        split=rules.split_samples.output.tsv,
        array=rules.array_sites.output.tsv,
    output:
        vcf=f"{IMPUTE_DIR}/inputs/targets.vcf.gz",
        tbi=f"{IMPUTE_DIR}/inputs/targets.vcf.gz.tbi",
    params:
        upstream=impute_upstream("data", "ingest", "split", "array"),
    log:
        "logs/impute/target_vcf.log",
    conda:
        "../../envs/impute.yaml"
    script:
        "../../scripts/impute_target_vcf.py"


rule genetic_map:
    input:
        gmap=lambda wc: IMPUTE["data"]["genetic_map"],
        h5=rules.vcf_to_h5.output.h5,
    output:
        plink=f"{IMPUTE_DIR}/inputs/genetic_map.plink.map",
    params:
        upstream=impute_upstream("data", "ingest"),
    log:
        "logs/impute/genetic_map.log",
    conda:
        "../../envs/impute.yaml"
    script:
        "../../scripts/impute_genetic_map.py"


rule beagle:
    input:
        ref=rules.panel_vcf.output.vcf,
        target=rules.target_vcf.output.vcf,
        gmap=impute_genetic_map,
    output:
        vcf=f"{IMPUTE_DIR}/beagle/imputed.vcf.gz",
        tbi=f"{IMPUTE_DIR}/beagle/imputed.vcf.gz.tbi",
        runtime=f"{IMPUTE_DIR}/beagle/runtime.json",
    params:
        made_with=impute_method_settings("beagle"),  # see impute_method_settings
        mem_gb=IMPUTE["baselines"].get("beagle_mem_gb", 2),
        ne=IMPUTE["baselines"].get("beagle_ne"),
        seed=IMPUTE["baselines"].get("seed", 1),
    threads: IMPUTE["baselines"].get("threads", 2)
    resources:
        mem_mb=lambda wc: 1024 * (IMPUTE["baselines"].get("beagle_mem_gb", 2) + 1),
    log:
        "logs/impute/beagle.log",
    benchmark:
        f"{IMPUTE_DIR}/benchmarks/beagle.tsv"
    conda:
        "../../envs/impute.yaml"
    script:
        "../../scripts/impute_beagle.py"


rule minimac4_compress:
    input:
        ref=rules.panel_vcf.output.vcf,
    output:
        msav=f"{IMPUTE_DIR}/minimac4/panel.msav",
    threads: IMPUTE["baselines"].get("threads", 2)
    params:
        upstream=impute_upstream("data", "ingest", "split"),
    log:
        "logs/impute/minimac4_compress.log",
    conda:
        "../../envs/impute.yaml"
    script:
        "../../scripts/impute_minimac4_compress.py"


rule minimac4:
    input:
        msav=rules.minimac4_compress.output.msav,
        target=rules.target_vcf.output.vcf,
        gmap=impute_genetic_map,
    output:
        vcf=f"{IMPUTE_DIR}/minimac4/imputed.vcf.gz",
        tbi=f"{IMPUTE_DIR}/minimac4/imputed.vcf.gz.tbi",
        runtime=f"{IMPUTE_DIR}/minimac4/runtime.json",
    threads: IMPUTE["baselines"].get("threads", 2)
    params:
        made_with=impute_method_settings("minimac4"),
    log:
        "logs/impute/minimac4.log",
    benchmark:
        f"{IMPUTE_DIR}/benchmarks/minimac4.tsv"
    conda:
        "../../envs/impute.yaml"
    script:
        "../../scripts/impute_minimac4.py"


rule af_floor:
    input:
        h5=rules.vcf_to_h5.output.h5,
        split=rules.split_samples.output.tsv,
    output:
        vcf=f"{IMPUTE_DIR}/af_floor/imputed.vcf.gz",
        tbi=f"{IMPUTE_DIR}/af_floor/imputed.vcf.gz.tbi",
        runtime=f"{IMPUTE_DIR}/af_floor/runtime.json",
    params:
        made_with=impute_method_settings("af_floor"),
    log:
        "logs/impute/af_floor.log",
    conda:
        "../../envs/impute.yaml"
    script:
        "../../scripts/impute_af_floor.py"


rule evaluate_imputation:
    input:
        h5=rules.vcf_to_h5.output.h5,
        split=rules.split_samples.output.tsv,
        array=rules.array_sites.output.tsv,
        vcf=f"{IMPUTE_DIR}/{{method}}/imputed.vcf.gz",
        runtime=f"{IMPUTE_DIR}/{{method}}/runtime.json",
    output:
        tsv=f"{IMPUTE_DIR}/eval/{{method}}.tsv",
    params:
        evaluate=IMPUTE["evaluate"],
        made_with=lambda wc: impute_method_settings(wc.method),  # see impute_method_settings
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
        evaluate=IMPUTE["evaluate"],
        made_with={m: impute_method_settings(m) for m in IMPUTE_METHODS},  # see impute_method_settings
    log:
        "logs/impute/impute_eval.log",
    conda:
        "../../envs/impute.yaml"
    script:
        "../../scripts/impute_combine.py"


rule plot_impute_eval:
    input:
        tsv="results/impute_eval.tsv",
    output:
        report(
            "results/impute_r2_by_maf.png",
            caption="../report/impute_r2_by_maf.rst",
            category="Imputation",
        ),
    params:
        made_with={m: impute_method_settings(m) for m in IMPUTE_METHODS},  # see impute_method_settings
    log:
        "logs/impute/plot_impute_eval.log",
    conda:
        "../../envs/impute.yaml"
    script:
        "../../scripts/impute_plot.py"
