# CRISPR branch: efficiency table -> oligo fasta -> 23/30mers -> join -> (energy) -> split -> DNABERT tokens
# -> encoder (local checkpoint or pretrained here) -> one cached model per method (a "stack" method blends
# trained ones) -> results/crispr_eval.tsv.
# Each model's resumable checkpoint lives in models/{method}/work/ (not a declared output), so a killed job
# resumes from work/last/ when the rule reruns instead of Snakemake deleting it.
# Every step has the settings of the steps above it as params (crispr_upstream, crispr_method_settings), so a
# step killed after an edit cannot leave later files of the old settings standing.

include: "crispr_common.smk"


wildcard_constraints:
    method="|".join(CRISPR_METHODS),


rule crispr_all:
    input:
        "results/crispr_eval.tsv",
        "results/crispr_scatter.png",


rule crispr_fetch_azimuth:
    output:
        csv="resources/crispr/FC_plus_RES_withPredictions.csv",
    params:
        azimuth=CRISPR["data"]["azimuth"],
    log:
        "logs/crispr/fetch_azimuth.log",
    conda:
        "../../envs/crispr.yaml"
    script:
        "../../scripts/crispr_fetch.py"


rule crispr_inputs:
    input:
        table=crispr_table,
    output:
        fasta=f"{CRISPR_DIR}/inputs/oligos.fa",
        labels=f"{CRISPR_DIR}/inputs/labels.tsv",
    params:
        data=CRISPR["data"],
        on_bad_record=CRISPR["on_bad_record"],
    log:
        "logs/crispr/inputs.log",
    conda:
        "../../envs/crispr.yaml"
    script:
        "../../scripts/crispr_inputs.py"


rule crispr_mers:
    input:
        fasta=rules.crispr_inputs.output.fasta,
    output:
        mer23=f"{CRISPR_DIR}/inputs/23mers.fa",
        mer30=f"{CRISPR_DIR}/inputs/30mers.fa",
    params:
        upstream=crispr_upstream("inputs"),
        on_bad_record=CRISPR["on_bad_record"],
    log:
        "logs/crispr/mers.log",
    conda:
        "../../envs/crispr.yaml"
    script:
        "../../scripts/crispr_mers.py"


rule crispr_join:
    input:
        labels=rules.crispr_inputs.output.labels,
        mer30=rules.crispr_mers.output.mer30,
    output:
        guides=f"{CRISPR_DIR}/inputs/guides.tsv",
    params:
        upstream=crispr_upstream("inputs", "mers"),
        join=CRISPR["join"],
    log:
        "logs/crispr/join.log",
    conda:
        "../../envs/crispr.yaml"
    script:
        "../../scripts/crispr_join.py"


rule crispr_energy:
    input:
        guides=rules.crispr_join.output.guides,
    output:
        energy=f"{CRISPR_DIR}/inputs/energy.tsv",
    params:
        upstream=crispr_upstream("inputs", "mers", "join"),
    log:
        "logs/crispr/energy.log",
    conda:
        "../../envs/crispr.yaml"
    script:
        "../../scripts/crispr_energy.py"


rule crispr_split:
    input:
        guides=rules.crispr_join.output.guides,
    output:
        split=f"{CRISPR_DIR}/split.tsv",
    params:
        upstream=crispr_upstream("inputs", "mers", "join"),
        split=CRISPR["split"],
    log:
        "logs/crispr/split.log",
    conda:
        "../../envs/crispr.yaml"
    script:
        "../../scripts/crispr_split.py"


rule crispr_tokenize:
    input:
        guides=rules.crispr_join.output.guides,
        split=rules.crispr_split.output.split,
        energy=rules.crispr_energy.output.energy if CRISPR["energy"]["enabled"] else [],
    output:
        dataset=f"{CRISPR_DIR}/dataset.npz",
    params:
        upstream=crispr_upstream("inputs", "mers", "join", "energy", "split"),
        k=CRISPR["k"],
    log:
        "logs/crispr/tokenize.log",
    conda:
        "../../envs/crispr.yaml"
    script:
        "../../scripts/crispr_tokenize.py"


rule crispr_pretrain:
    input:
        fastas=[rules.crispr_inputs.output.fasta, rules.crispr_mers.output.mer30,
                *CRISPR["encoder"].get("extra_fasta", [])],
    output:
        encoder=directory(f"{CRISPR_DIR}/encoder"),
    params:
        upstream=crispr_upstream("inputs", "mers"),
        pretrain=CRISPR["encoder"]["pretrain"],
        k=CRISPR["k"],
        work_dir=f"{CRISPR_DIR}/encoder_work",
    threads: CRISPR_THREADS
    resources:
        gpu=CRISPR_RESOURCES.get("gpu", 0),
        mem_mb=CRISPR_RESOURCES.get("mem_mb", 4000),
    log:
        "logs/crispr/pretrain.log",
    conda:
        "../../envs/crispr.yaml"
    script:
        "../../scripts/crispr_pretrain.py"


rule crispr_train:
    wildcard_constraints:
        method="|".join(CRISPR_TRAINED),
    input:
        dataset=rules.crispr_tokenize.output.dataset,
        encoder=lambda wc: crispr_encoder(wc) if CRISPR["models"]["methods"][wc.method]["kind"] in ENCODER_KINDS else [],
    output:
        predictions=f"{CRISPR_DIR}/models/{{method}}/predictions.tsv",
        runtime=f"{CRISPR_DIR}/models/{{method}}/runtime.json",
    params:
        spec=lambda wc: CRISPR["models"]["methods"][wc.method],
        models=CRISPR_MODELS_SHARED,  # not the other methods' blocks: editing one method retrains that one
        k=CRISPR["k"],
        encoder_name=crispr_encoder_name(),
        made_with=lambda wc: crispr_method_settings(wc.method),  # includes the encoder's pretraining settings
        work_dir=f"{CRISPR_DIR}/models/{{method}}/work",
    threads: CRISPR_THREADS
    resources:
        gpu=CRISPR_RESOURCES.get("gpu", 0),
        mem_mb=CRISPR_RESOURCES.get("mem_mb", 4000),
    log:
        "logs/crispr/train_{method}.log",
    conda:
        "../../envs/crispr.yaml"
    script:
        "../../scripts/crispr_train.py"


rule crispr_stack:
    wildcard_constraints:
        method="|".join(CRISPR_STACKED),
    input:
        predictions=crispr_stack_members,
        runtimes=lambda wc: crispr_stack_members(wc, "runtime.json"),
    output:
        predictions=f"{CRISPR_DIR}/models/{{method}}/predictions.tsv",
        runtime=f"{CRISPR_DIR}/models/{{method}}/runtime.json",
    params:
        members=lambda wc: CRISPR["models"]["methods"][wc.method]["members"],
        made_with=lambda wc: crispr_method_settings(wc.method),
    log:
        "logs/crispr/stack_{method}.log",
    conda:
        "../../envs/crispr.yaml"
    script:
        "../../scripts/crispr_stack.py"


rule crispr_eval:
    input:
        predictions=expand(f"{CRISPR_DIR}/models/{{method}}/predictions.tsv", method=CRISPR_METHODS),
        runtimes=expand(f"{CRISPR_DIR}/models/{{method}}/runtime.json", method=CRISPR_METHODS),
    output:
        tsv=report("results/crispr_eval.tsv", caption="../report/crispr_eval.rst", category="CRISPR"),
    params:
        made_with={m: crispr_method_settings(m) for m in CRISPR_METHODS},  # see crispr_method_settings
    log:
        "logs/crispr/eval.log",
    conda:
        "../../envs/crispr.yaml"
    script:
        "../../scripts/crispr_evaluate.py"


rule crispr_plot:
    input:
        predictions=expand(f"{CRISPR_DIR}/models/{{method}}/predictions.tsv", method=CRISPR_METHODS),
    output:
        report("results/crispr_scatter.png", caption="../report/crispr_scatter.rst", category="CRISPR"),
    params:
        methods=CRISPR_METHODS,
        made_with={m: crispr_method_settings(m) for m in CRISPR_METHODS},  # see crispr_method_settings
    log:
        "logs/crispr/plot.log",
    conda:
        "../../envs/crispr.yaml"
    script:
        "../../scripts/crispr_plot.py"
