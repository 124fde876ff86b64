# CRISPR branch: efficiency table -> oligo fasta -> 23/30mers -> join -> (energy) -> split -> DNABERT tokens
# -> encoder (local checkpoint or pretrained here) -> one cached model per method (a "stack" method blends
# trained ones) -> results/crispr_eval.tsv.
# Each model's resumable checkpoint lives in models/{method}/work/ (not a declared output), so a killed job
# resumes from work/last/ when the rule reruns instead of Snakemake deleting it.
# Every rule's one rerun key is made_with (crispr_made_with, crispr_common.smk): no script reads it.

include: "crispr_common.smk"


wildcard_constraints:
    method="|".join(CRISPR_METHODS),


rule crispr_all:
    input:
        "results/crispr_eval.tsv",
        "results/crispr_scatter.png",
        expand("results/crispr/predict/{stem}.tsv", stem=list(CRISPR_PREDICT_FASTA)),
        expand("results/crispr_scatter_{name}.png", name=list(CRISPR_EXTERNAL)),


rule crispr_fetch_azimuth:
    output:
        csv="resources/crispr/FC_plus_RES_withPredictions.csv",
    params:
        azimuth=CRISPR["data"]["azimuth"],
        sha256=lambda wc: download_sha256(f"{CRISPR['data']['azimuth']['package']}=={CRISPR['data']['azimuth']['version']}"),
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
        made_with=crispr_made_with("crispr_mers"),  # rerun key: read by no script (settings_above)
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
        made_with=crispr_made_with("crispr_join"),  # rerun key: read by no script (settings_above)
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
        made_with=crispr_made_with("crispr_energy"),  # rerun key: read by no script (settings_above)
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
        made_with=crispr_made_with("crispr_split"),  # rerun key: read by no script (settings_above)
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
        made_with=crispr_made_with("crispr_tokenize"),  # rerun key: read by no script (settings_above)
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
                *CRISPR["encoder"]["extra_fasta"]],
    output:
        encoder=directory(f"{CRISPR_DIR}/encoder"),
    params:
        made_with=crispr_made_with("crispr_pretrain"),  # rerun key: read by no script (settings_above)
        pretrain=CRISPR["encoder"]["pretrain"],
        k=CRISPR["k"],
        work_dir=f"{CRISPR_DIR}/encoder_work",
    threads: CRISPR_THREADS
    resources:
        gpu=CRISPR_RESOURCES["gpu"],
        mem_mb=CRISPR_RESOURCES["mem_mb"],
    log:
        "logs/crispr/pretrain.log",
    conda:
        "../../envs/crispr.yaml"
    script:
        "../../scripts/crispr_pretrain.py"


rule crispr_train:
    wildcard_constraints:
        method="|".join(CRISPR_TRAINED) or "(?!)",  # (?!): matches nothing
    input:
        dataset=rules.crispr_tokenize.output.dataset,
        encoder=lambda wc: crispr_encoder(wc) if CRISPR["models"]["methods"][wc.method]["kind"] in ENCODER_KINDS else [],
    output:
        predictions=f"{CRISPR_DIR}/models/{{method}}/predictions.tsv",
        runtime=f"{CRISPR_DIR}/models/{{method}}/runtime.json",
        kept=directory(f"{CRISPR_DIR}/models/{{method}}/kept"),  # the trained members, for crispr_predict
    params:
        made_with=lambda wc: crispr_made_with(f"crispr_train/{wc.method}"),  # rerun key: read by no script (settings_above)
        spec=lambda wc: CRISPR["models"]["methods"][wc.method],
        models=CRISPR_MODELS_SHARED,  # not the other methods' blocks: editing one method retrains that one
        k=CRISPR["k"],
        encoder_name=crispr_encoder_name(),
        work_dir=f"{CRISPR_DIR}/models/{{method}}/work",
    threads: CRISPR_THREADS
    resources:
        gpu=CRISPR_RESOURCES["gpu"],
        mem_mb=CRISPR_RESOURCES["mem_mb"],
    log:
        "logs/crispr/train_{method}.log",
    conda:
        "../../envs/crispr.yaml"
    script:
        "../../scripts/crispr_train.py"


rule crispr_stack:
    wildcard_constraints:
        method="|".join(CRISPR_STACKED) or "(?!)",
    input:
        predictions=crispr_stack_members,
        runtimes=lambda wc: crispr_stack_members(wc, "runtime.json"),
    output:
        predictions=f"{CRISPR_DIR}/models/{{method}}/predictions.tsv",
        runtime=f"{CRISPR_DIR}/models/{{method}}/runtime.json",
        kept=directory(f"{CRISPR_DIR}/models/{{method}}/kept"),  # the blend; its members' kept directories beside it
    params:
        made_with=lambda wc: crispr_made_with(f"crispr_stack/{wc.method}"),  # rerun key: read by no script (settings_above)
        members=lambda wc: CRISPR["models"]["methods"][wc.method]["members"],
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
        external=expand(f"{CRISPR_DIR}/external/{{name}}/predictions.tsv", name=list(CRISPR_EXTERNAL)),
    output:
        tsv=report("results/crispr_eval.tsv", caption="../report/crispr_eval.rst", category="CRISPR"),
    params:
        made_with=crispr_made_with("crispr_eval"),  # rerun key: read by no script (settings_above)
        external=list(CRISPR_EXTERNAL),
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
        made_with=crispr_made_with("crispr_plot"),  # rerun key: read by no script (settings_above)
        methods=CRISPR_METHODS,
    log:
        "logs/crispr/plot.log",
    conda:
        "../../envs/crispr.yaml"
    script:
        "../../scripts/crispr_plot.py"


rule crispr_predict:
    input:
        fasta=lambda wc: CRISPR_PREDICT_FASTA[wc.stem],
        predictions=expand(f"{CRISPR_DIR}/models/{{method}}/predictions.tsv", method=CRISPR_PREDICT_METHODS),
        kept=expand(f"{CRISPR_DIR}/models/{{method}}/kept", method=CRISPR_PREDICT_METHODS),
    output:
        tsv="results/crispr/predict/{stem}.tsv",
    params:
        made_with=crispr_made_with("crispr_predict"),  # rerun key: read by no script (settings_above)
        method=CRISPR_PREDICT["method"],
        methods=CRISPR_PREDICT_METHODS,
    wildcard_constraints:
        stem="|".join(map(re.escape, CRISPR_PREDICT_FASTA)) or "(?!)",  # (?!): matches nothing
    log:
        "logs/crispr/predict_{stem}.log",
    conda:
        "../../envs/crispr.yaml"
    script:
        "../../scripts/crispr_predict.py"


rule crispr_external_guides:
    input:
        table=lambda wc: CRISPR_EXTERNAL[wc.name]["path"],
    output:
        guides=f"{CRISPR_DIR}/external/{{name}}/guides.tsv",
    params:
        made_with=lambda wc: crispr_made_with(f"crispr_external_guides/{wc.name}"),  # rerun key: read by no script (settings_above)
        spec=lambda wc: CRISPR_EXTERNAL[wc.name],
        label_range=CRISPR["data"]["label_range"],
        on_bad_record=CRISPR["on_bad_record"],
        join=CRISPR["join"],
    wildcard_constraints:
        name="|".join(map(re.escape, CRISPR_EXTERNAL)) or "(?!)",  # (?!): matches nothing
    log:
        "logs/crispr/external_guides_{name}.log",
    conda:
        "../../envs/crispr.yaml"
    script:
        "../../scripts/crispr_external.py"


rule crispr_external_score:
    input:
        guides=rules.crispr_external_guides.output.guides,
        training=rules.crispr_join.output.guides,
        kept=expand(f"{CRISPR_DIR}/models/{{method}}/kept", method=CRISPR_METHODS),
    output:
        predictions=f"{CRISPR_DIR}/external/{{name}}/predictions.tsv",
    params:
        made_with=lambda wc: crispr_made_with(f"crispr_external_score/{wc.name}"),  # rerun key: read by no script (settings_above)
        methods=CRISPR_METHODS,
    wildcard_constraints:
        name="|".join(map(re.escape, CRISPR_EXTERNAL)) or "(?!)",
    log:
        "logs/crispr/external_score_{name}.log",
    conda:
        "../../envs/crispr.yaml"
    script:
        "../../scripts/crispr_external.py"


rule crispr_external_plot:
    input:
        predictions=rules.crispr_external_score.output.predictions,
    output:
        report("results/crispr_scatter_{name}.png", caption="../report/crispr_external.rst", category="CRISPR"),
    params:
        made_with=lambda wc: crispr_made_with(f"crispr_external_plot/{wc.name}"),  # rerun key: read by no script (settings_above)
        methods=CRISPR_METHODS,
    wildcard_constraints:
        name="|".join(map(re.escape, CRISPR_EXTERNAL)) or "(?!)",
    log:
        "logs/crispr/external_plot_{name}.log",
    conda:
        "../../envs/crispr.yaml"
    script:
        "../../scripts/crispr_plot.py"
