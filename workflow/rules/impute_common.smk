# Constants, input functions and the rerun table of the imputation branch (kept apart from its rules,
# as --lint asks). Defaults of optional keys are in the schema (validate(..., set_default=True)).

IMPUTE = config["impute"]
IMPUTE_DIR = "results/impute"
IMPUTE_MODEL = IMPUTE["model"]
# what a variant is trained with: the model block less what only imputation reads (so editing it retrains nothing)
MODEL_TRAINING = {k: v for k, v in IMPUTE_MODEL.items() if not k.startswith("predict_")}
# what only imputation with a trained model reads: its rerun key
MODEL_PREDICT = {f"impute.model.{k}": v for k, v in IMPUTE_MODEL.items() if k.startswith("predict_")}
IMPUTE_BASELINES = IMPUTE["baselines"]
# a variant with enabled: false is left out (a preset merged over config.yaml cannot remove a key)
MODEL_VARIANTS = ([v for v, spec in IMPUTE_MODEL["variants"].items() if (spec or {}).get("enabled", True)]
                  if IMPUTE_MODEL["enabled"] else [])


def model_training(variant):
    """What ``variant`` is trained with: the model block with that variant's overrides alone among the variants, so
    editing (or switching off) another variant retrains nothing here."""
    spec = {k: v for k, v in (IMPUTE_MODEL["variants"][variant] or {}).items() if k != "enabled"}
    return {**MODEL_TRAINING, "variants": {variant: spec}}


MODEL_RESOURCES = IMPUTE_MODEL["resources"]
# the validation r² bins of the model: its own, else the evaluation's
MODEL_VAL_MAF_BINS = IMPUTE_MODEL["val_maf_bins"] or IMPUTE["evaluate"]["maf_bins"]
# every method scored in results/impute_eval.tsv: the peers, then the model variants
IMPUTE_METHODS = list(IMPUTE_BASELINES["methods"]) + MODEL_VARIANTS
IMPUTE_GENETIC_MAP = bool(IMPUTE["data"]["genetic_map"])
# held-out targets given to the methods as the true haplotypes (true), or unphased and phased against the panel (false)
TARGETS_PHASED = IMPUTE["split"]["targets_phased"]
# what the split is made with: impute.split less targets_phased, which only the target VCF reads (toggling it
# reruns the targets and what imputes them, not the split nor the models trained on it)
IMPUTE_SPLIT = {k: v for k, v in IMPUTE["split"].items() if k != "targets_phased"}


def impute_raw_vcf(wildcards):
    """The VCF to ingest: the simulated panel, or the user's file from config."""
    if IMPUTE["data"]["source"] == "simulate":
        return "resources/impute/simulated/panel.vcf.gz"
    return IMPUTE["data"]["vcf"]


def impute_raw_panel(wildcards):
    """The 1000 Genomes-style population panel file matching impute_raw_vcf."""
    if IMPUTE["data"]["source"] == "simulate":
        return "resources/impute/simulated/panel.txt"
    return IMPUTE["data"]["panel"]


def impute_plink_map(wildcards):
    """PLINK-format map (Beagle, minimac4, the model) when config gives a genetic map, else nothing."""
    return f"{IMPUTE_DIR}/inputs/genetic_map.plink.map" if IMPUTE_GENETIC_MAP else []


def impute_phased_targets(wildcards):
    """The phased array targets every method imputes from: the test samples' true haplotypes (rule
    impute_target_vcf), or, with ``impute.split.targets_phased: false``, those written unphased and phased
    against the panel (rule impute_phase_targets), as real targets are."""
    return f"{IMPUTE_DIR}/inputs/targets.vcf.gz" if TARGETS_PHASED else f"{IMPUTE_DIR}/inputs/targets.phased.vcf.gz"


def impute_method_step(method):
    """The step that writes ``method``'s imputed VCF (a model variant's is impute_ragbert/<variant>)."""
    return f"impute_ragbert/{method}" if method in MODEL_VARIANTS else f"impute_{method}"


# What each step is made with (config name -> value) and which steps it reads: settings_above (common.smk)
# turns these into each rule's rerun key. "data" is the raw input (the simulation or the user's files).
_gmap = ["impute_genetic_map"] if IMPUTE_GENETIC_MAP else []
_phased_targets = "impute_target_vcf" if TARGETS_PHASED else "impute_phase_targets"  # what impute_phased_targets gives
IMPUTE_SETTINGS = {
    "impute_simulate": {"impute.simulate": IMPUTE["simulate"]},
    "data": {"impute.data": IMPUTE["data"]},
    "impute_vcf_to_h5": {"impute.ingest": IMPUTE["ingest"]},
    "impute_windows": {"impute.windows": IMPUTE["windows"]},
    "impute_split": {"impute.split": IMPUTE_SPLIT},
    "impute_array_sites": {"impute.array": IMPUTE["array"]},
    "impute_target_vcf": {"impute.split.targets_phased": TARGETS_PHASED},
    "impute_phase_targets": {"impute.baselines.beagle_ne": IMPUTE_BASELINES["beagle_ne"],
                             "impute.baselines.seed": IMPUTE_BASELINES["seed"]},
    "impute_beagle": {"impute.baselines.beagle_ne": IMPUTE_BASELINES["beagle_ne"],
                      "impute.baselines.seed": IMPUTE_BASELINES["seed"]},
    **{f"impute_train/{v}": {"impute.model": model_training(v), "impute.model.val_maf_bins": MODEL_VAL_MAF_BINS}
       for v in MODEL_VARIANTS},
    **{f"impute_ragbert/{v}": {**MODEL_PREDICT, "impute.model.train.device": IMPUTE_MODEL["train"]["device"]} for v in MODEL_VARIANTS},
    **{f"impute_evaluate/{m}": {"impute.evaluate": IMPUTE["evaluate"]} for m in IMPUTE_METHODS},
    "impute_plot_training": {"impute.model.train.early_stopping_metric":
                             IMPUTE_MODEL["train"]["early_stopping_metric"]},
}
IMPUTE_PARENTS = {
    "impute_simulate": [],
    "data": ["impute_simulate"] if IMPUTE["data"]["source"] == "simulate" else [],
    "impute_vcf_to_h5": ["data"],
    "impute_windows": ["impute_vcf_to_h5"],
    "impute_split": ["impute_vcf_to_h5"],
    "impute_array_sites": ["impute_vcf_to_h5", "impute_split"],
    "impute_panel_vcf": ["impute_vcf_to_h5", "impute_split"],
    "impute_target_vcf": ["impute_vcf_to_h5", "impute_split", "impute_array_sites"],
    "impute_genetic_map": ["data", "impute_vcf_to_h5"],
    "impute_phase_targets": ["impute_panel_vcf", "impute_target_vcf", *_gmap],
    "impute_beagle": ["impute_panel_vcf", _phased_targets, *_gmap],
    "impute_minimac4_compress": ["impute_panel_vcf"],
    "impute_minimac4": ["impute_minimac4_compress", _phased_targets, *_gmap],
    "impute_af_floor": ["impute_vcf_to_h5", "impute_split"],
    **{f"impute_train/{v}": ["impute_vcf_to_h5", "impute_split", "impute_array_sites", "impute_windows", *_gmap]
       for v in MODEL_VARIANTS},
    **{f"impute_ragbert/{v}": [f"impute_train/{v}", "impute_vcf_to_h5", "impute_split", _phased_targets,
                               "impute_windows", *_gmap] for v in MODEL_VARIANTS},
    **{f"impute_evaluate/{m}": [impute_method_step(m), "impute_vcf_to_h5", "impute_split", "impute_array_sites"]
       for m in IMPUTE_METHODS},
    "impute_eval": [f"impute_evaluate/{m}" for m in IMPUTE_METHODS],
    "impute_plot": ["impute_eval"],
    "impute_plot_training": [f"impute_train/{v}" for v in MODEL_VARIANTS],
}


def impute_made_with(step):
    """The rerun key of an imputation step: :func:`settings_above` (common.smk) over the tables above."""
    return settings_above(step, IMPUTE_SETTINGS, IMPUTE_PARENTS)


# ---- imputing your own targets (impute_targets.smk) ------------------------------------------------
IMPUTE_TARGETS = IMPUTE["targets"]
TARGETS_DIR = "results/impute_targets"
TARGETS_SIM_DIR = "resources/impute/simulated_targets"
TARGETS_SIMULATED = IMPUTE_TARGETS["source"] == "simulate"
if TARGETS_SIMULATED:  # the files a user brings, simulated by impute_targets_simulate; from here on, source files
    IMPUTE_TARGETS.update(
        vcf=f"{TARGETS_SIM_DIR}/targets.{{chrom}}.vcf.gz", truth=f"{TARGETS_SIM_DIR}/truth.{{chrom}}.vcf.gz",
        array_sites=IMPUTE_TARGETS.get("array_sites") or {"min_maf": IMPUTE["array"]["min_maf"],
                                                          "spacing_bp": IMPUTE["array"]["spacing_bp"]},
        chromosomes=IMPUTE_TARGETS["chromosomes"] or list(IMPUTE_TARGETS["simulate"]["contigs"]))
    IMPUTE["reference"].update(vcf=f"{TARGETS_SIM_DIR}/ref.{{chrom}}.vcf.gz", panel=f"{TARGETS_SIM_DIR}/panel.txt",
                               genetic_map=None)
# the peers impute chunk by chunk; a model variant imputes a whole chromosome with the checkpoint trained on the panel
PEERS_BY_CHUNK = ("beagle", "minimac4")
TARGET_METHODS = [m for m in IMPUTE_TARGETS["methods"] if m in PEERS_BY_CHUNK or m in MODEL_VARIANTS]
TARGET_PEERS = [m for m in TARGET_METHODS if m in PEERS_BY_CHUNK]
TARGET_MODELS = [m for m in TARGET_METHODS if m in MODEL_VARIANTS]  # none while impute.model is off
TARGETS_HELDOUT = IMPUTE_TARGETS["source"] == "heldout"
TARGETS_TRUTH = TARGETS_HELDOUT or bool(IMPUTE_TARGETS["truth"])


def impute_targets_chromosomes():
    """The contigs to impute: config's list, else the panel's contig (the simulated one, or the VCF's first)."""
    if IMPUTE_TARGETS["chromosomes"]:
        return list(IMPUTE_TARGETS["chromosomes"])
    if IMPUTE["data"]["source"] == "simulate":
        return [IMPUTE["simulate"]["contig"]]
    import sys

    import pysam

    try:  # the first record's contig; a bad file is the ingest job's to report (in its log), not the DAG's
        with pysam.VariantFile(IMPUTE["data"]["vcf"]) as vcf:
            return [next(iter(vcf)).chrom]
    except (OSError, ValueError, StopIteration) as exc:
        print(f"impute targets: no contig read from {IMPUTE['data']['vcf']} ({exc!r}); set impute.targets.chromosomes "
              "to impute held-out targets", file=sys.stderr)
        return []


TARGET_CHROMOSOMES = impute_targets_chromosomes()
_unknown = [m for m in IMPUTE_TARGETS["methods"] if m not in PEERS_BY_CHUNK and m not in IMPUTE_MODEL["variants"]]
if _unknown:
    raise ValueError(f"config impute.targets.methods: {_unknown} are not enabled variants of impute.model.variants "
                     f"({MODEL_VARIANTS})")
if TARGET_MODELS and not TARGETS_HELDOUT and not IMPUTE["reference"]["panel"]:
    raise ValueError("config impute.targets.methods: a model variant trains on your reference panel and needs its "
                     "populations: set impute.reference.panel (a file 'sample pop super_pop' as impute.data.panel), or "
                     "impute with the peers only")
# a table with our model scores the panel's biallelic SNPs only, for every method, when the model ingests no indels
TARGETS_SNPS_ONLY = bool(TARGET_MODELS) and not IMPUTE["ingest"]["indels"]
# the reference panel of your own, split for training the model: reference and validation samples, no test ones
TARGETS_REF_SPLIT = {"test_fraction": 0.0, "validation_fraction": IMPUTE["split"]["validation_fraction"],
                     "seed": IMPUTE["split"]["seed"]}


def _per_chrom(pattern, chrom):
    return pattern.format(chrom=chrom) if "{chrom}" in pattern else pattern


def impute_targets_vcf(wildcards):
    """The targets' array VCF holding ``wildcards.chrom`` (one multi-contig file or one per chromosome)."""
    if TARGETS_HELDOUT:
        return f"{TARGETS_DIR}/inputs/targets.vcf.gz"
    if IMPUTE_TARGETS["array_sites"]:
        return f"{TARGETS_DIR}/{wildcards.chrom}/array.vcf.gz"
    return impute_targets_raw_vcf(wildcards)


def impute_targets_raw_vcf(wildcards):
    """The user's target VCF holding ``wildcards.chrom``."""
    return _per_chrom(IMPUTE_TARGETS["vcf"], wildcards.chrom)


def impute_targets_truth(wildcards):
    """The targets' full genotypes (truth) for ``wildcards.chrom``."""
    if TARGETS_HELDOUT:
        return f"{TARGETS_DIR}/inputs/truth.vcf.gz"
    return _per_chrom(IMPUTE_TARGETS["truth"], wildcards.chrom)


def impute_targets_reference(wildcards):
    """The phased reference panel of ``wildcards.chrom``: the split's panel (heldout) or the user's file."""
    if TARGETS_HELDOUT:
        return f"{IMPUTE_DIR}/inputs/panel.vcf.gz"
    return _per_chrom(IMPUTE["reference"]["vcf"], wildcards.chrom)


def impute_targets_model_input(wildcards, what):
    """What a model variant imputes ``wildcards.chrom`` with: the held-out evaluation's panel, split, windows and
    model (source heldout), or the reference panel of your own's and the model trained on all its chromosomes."""
    v, c = wildcards.tmethod, wildcards.chrom
    if TARGETS_HELDOUT:
        return {"h5": f"{IMPUTE_DIR}/panel.h5", "split": f"{IMPUTE_DIR}/split.tsv", "windows": f"{IMPUTE_DIR}/windows.tsv",
                "best": f"{IMPUTE_DIR}/{v}/model/best", "train_runtime": f"{IMPUTE_DIR}/{v}/model/train_runtime.json"}[what]
    return {"h5": f"{TARGETS_DIR}/{c}/panel.h5", "split": f"{TARGETS_DIR}/{c}/panel_split.tsv",
            "windows": f"{TARGETS_DIR}/{c}/windows.tsv", "best": f"{TARGETS_DIR}/model/{v}/best",
            "train_runtime": f"{TARGETS_DIR}/model/{v}/train_runtime.json"}[what]


def impute_targets_gmap(wildcards):
    """PLINK map of ``wildcards.chrom`` when a genetic map is configured, else nothing."""
    if TARGETS_HELDOUT:
        return impute_plink_map(wildcards)
    return f"{TARGETS_DIR}/{wildcards.chrom}/genetic_map.plink.map" if IMPUTE["reference"]["genetic_map"] else []


def impute_targets_cores(wildcards):
    """The imputed cores of ``wildcards.chrom``'s kept chunks (known once impute_targets_chunks has run)."""
    from omicslm.impute.chunks import read_chunks

    chunks = read_chunks(checkpoints.impute_targets_chunks.get(chrom=wildcards.chrom).output.tsv)
    return [f"{TARGETS_DIR}/{wildcards.chrom}/{wildcards.tmethod}/{c}.vcf.gz" for c in chunks.loc[chunks.kept, "chunk"]]


def impute_targets_per_chrom(function):
    """``function`` (an input function of ``wildcards.chrom``) of every target chromosome, in order."""
    from types import SimpleNamespace

    return [function(SimpleNamespace(chrom=c)) for c in TARGET_CHROMOSOMES]


def impute_targets_sim_seed(chrom):
    """Simulation seed of one simulated chromosome: impute.targets.simulate.seed + a number of its name."""
    import zlib

    return IMPUTE_TARGETS["simulate"]["seed"] + zlib.crc32(chrom.encode()) % 100_000


_heldout_parents = ["impute_targets_heldout"] if TARGETS_HELDOUT else []
_reference_parents = ["impute_panel_vcf"] if TARGETS_HELDOUT else []
_SIM_MODEL = {k: IMPUTE["simulate"].get(k) for k in ("species", "model", "populations", "mutation_rate")}
IMPUTE_SETTINGS.update({
    **{f"impute_targets_simulate/{c}": {**{f"impute.simulate.{k}": v for k, v in _SIM_MODEL.items()},
                                        "contig": IMPUTE_TARGETS["simulate"]["contigs"].get(c),
                                        "impute.targets.simulate.targets_per_population":
                                            IMPUTE_TARGETS["simulate"]["targets_per_population"],
                                        "seed": impute_targets_sim_seed(c)}
       for c in (TARGET_CHROMOSOMES if TARGETS_SIMULATED else [])},
    "impute_targets_heldout": {"impute.targets.phased": IMPUTE_TARGETS["phased"]},
    **{f"impute_targets_array/{c}": {"impute.targets.array_sites": IMPUTE_TARGETS["array_sites"]}
       for c in TARGET_CHROMOSOMES},
    "impute_targets_inputs": {"impute.targets.source": IMPUTE_TARGETS["source"], "impute.targets.vcf": IMPUTE_TARGETS["vcf"],
                              "impute.targets.truth": IMPUTE_TARGETS["truth"], "impute.reference": IMPUTE["reference"]},
    **{f"impute_targets_qc/{c}": {"impute.targets.qc": IMPUTE_TARGETS["qc"]} for c in TARGET_CHROMOSOMES},
    **{f"impute_targets_phase/{c}": {"impute.baselines.beagle_ne": IMPUTE_BASELINES["beagle_ne"],
                                     "impute.baselines.seed": IMPUTE_BASELINES["seed"]} for c in TARGET_CHROMOSOMES},
    **{f"impute_targets_chunks/{c}": {"impute.targets.chunks": IMPUTE_TARGETS["chunks"]} for c in TARGET_CHROMOSOMES},
    **{f"impute_targets_beagle/{c}": {"impute.baselines.beagle_ne": IMPUTE_BASELINES["beagle_ne"],
                                      "impute.baselines.seed": IMPUTE_BASELINES["seed"]} for c in TARGET_CHROMOSOMES},
    **{f"impute_targets_evaluate/{m}/{c}": {"impute.evaluate": IMPUTE["evaluate"], "snps_only": TARGETS_SNPS_ONLY}
       for m in TARGET_METHODS for c in TARGET_CHROMOSOMES},
    **{f"impute_targets_gather/{v}/{c}": {**MODEL_PREDICT, "impute.model.train.device": IMPUTE_MODEL["train"]["device"]}
       for v in TARGET_MODELS for c in TARGET_CHROMOSOMES},
    # the model on a reference panel of your own (impute_targets_train.smk)
    **{f"impute_targets_ref_h5/{c}": {f"impute.ingest.{k}": v for k, v in IMPUTE["ingest"].items() if k != "min_maf"}
       for c in TARGET_CHROMOSOMES},  # min_maf: 0 there
    **{f"impute_targets_ref_split/{c}": {"impute.split.validation_fraction": IMPUTE["split"]["validation_fraction"],
                                         "impute.split.seed": IMPUTE["split"]["seed"]} for c in TARGET_CHROMOSOMES},
    **{f"impute_targets_ref_windows/{c}": {"impute.windows": IMPUTE["windows"]} for c in TARGET_CHROMOSOMES},
    **{f"impute_targets_train/{v}": {"impute.model": model_training(v), "impute.model.val_maf_bins": MODEL_VAL_MAF_BINS}
       for v in TARGET_MODELS},
    "impute_targets_plot": {"impute.targets.r2_along": IMPUTE_TARGETS["r2_along"], "snps_only": TARGETS_SNPS_ONLY},
})
IMPUTE_PARENTS.update({
    "impute_targets_heldout": ["impute_vcf_to_h5", "impute_split", "impute_array_sites"],
    "impute_targets_inputs": _heldout_parents + _reference_parents,
    **{f"impute_targets_array/{c}": ["impute_targets_inputs"] for c in TARGET_CHROMOSOMES},
    **{f"impute_targets_qc/{c}": ["impute_targets_inputs", *([f"impute_targets_array/{c}"] if IMPUTE_TARGETS["array_sites"]
                                                             else [])] for c in TARGET_CHROMOSOMES},
    **{f"impute_targets_phase/{c}": [f"impute_targets_qc/{c}"] for c in TARGET_CHROMOSOMES},
    **{f"impute_targets_chunks/{c}": [f"impute_targets_phase/{c}"] for c in TARGET_CHROMOSOMES},
    **{f"impute_targets_minimac4_compress/{c}": ["impute_targets_inputs"] for c in TARGET_CHROMOSOMES},
    **{f"impute_targets_beagle/{c}": [f"impute_targets_chunks/{c}"] for c in TARGET_CHROMOSOMES},
    **{f"impute_targets_minimac4/{c}": [f"impute_targets_chunks/{c}", f"impute_targets_minimac4_compress/{c}"]
       for c in TARGET_CHROMOSOMES},
    **{f"impute_targets_gather/{m}/{c}": [f"impute_targets_{m}/{c}"] for m in TARGET_PEERS for c in TARGET_CHROMOSOMES},
    # impute_targets_model: no chunks; the held-out model, or the one trained on your panel's chromosomes
    **{f"impute_targets_gather/{v}/{c}": ([f"impute_train/{v}", f"impute_targets_phase/{c}", "impute_windows"]
                                          if TARGETS_HELDOUT else
                                          [f"impute_targets_train/{v}", f"impute_targets_phase/{c}",
                                           f"impute_targets_ref_windows/{c}", f"impute_targets_ref_split/{c}"])
       for v in TARGET_MODELS for c in TARGET_CHROMOSOMES},
    **{f"impute_targets_ref_h5/{c}": ["impute_targets_inputs"] for c in TARGET_CHROMOSOMES},
    **{f"impute_targets_ref_split/{c}": [f"impute_targets_ref_h5/{c}"] for c in TARGET_CHROMOSOMES},
    **{f"impute_targets_ref_windows/{c}": [f"impute_targets_ref_h5/{c}"] for c in TARGET_CHROMOSOMES},
    **{f"impute_targets_ref_array/{c}": [f"impute_targets_ref_h5/{c}", f"impute_targets_phase/{c}"]
       for c in TARGET_CHROMOSOMES},
    **{f"impute_targets_train/{v}": [s for c in TARGET_CHROMOSOMES for s in
                                     (f"impute_targets_ref_split/{c}", f"impute_targets_ref_windows/{c}",
                                      f"impute_targets_ref_array/{c}")] for v in TARGET_MODELS},
    **{f"impute_targets_evaluate/{m}/{c}": [f"impute_targets_gather/{m}/{c}"]
       for m in TARGET_METHODS for c in TARGET_CHROMOSOMES},
    # the report's r2 along each chromosome (impute_targets_plot.smk)
    "impute_targets_plot": ["impute_targets_inputs",
                            *[f"impute_targets_gather/{m}/{c}" for m in TARGET_METHODS for c in TARGET_CHROMOSOMES],
                            *[s for c in TARGET_CHROMOSOMES for s in (f"impute_targets_qc/{c}", f"impute_targets_chunks/{c}")]],
    "impute_targets_eval": [f"impute_targets_evaluate/{m}/{c}" for m in TARGET_METHODS for c in TARGET_CHROMOSOMES],
})
if TARGETS_SIMULATED:  # each chromosome's steps read its own simulation (adding a chromosome reruns none of the others)
    IMPUTE_SETTINGS["impute_targets_simulate_panel"] = {
        "impute.simulate.populations": IMPUTE["simulate"]["populations"],
        "impute.simulate.super_populations": IMPUTE["simulate"].get("super_populations"),
        "impute.targets.simulate.targets_per_population": IMPUTE_TARGETS["simulate"]["targets_per_population"]}
    IMPUTE_PARENTS["impute_targets_simulate_panel"] = []
    for _c in TARGET_CHROMOSOMES:
        IMPUTE_PARENTS[f"impute_targets_simulate/{_c}"] = []
        for _base in ("impute_targets_array", "impute_targets_qc", "impute_targets_minimac4_compress",
                      "impute_targets_ref_h5"):  # the steps that read the chromosome's simulated files
            if f"{_base}/{_c}" in IMPUTE_PARENTS:
                IMPUTE_PARENTS[f"{_base}/{_c}"].append(f"impute_targets_simulate/{_c}")
        IMPUTE_PARENTS[f"impute_targets_ref_h5/{_c}"].append("impute_targets_simulate_panel")
    IMPUTE_PARENTS["impute_targets_plot"] += [f"impute_targets_simulate/{c}" for c in TARGET_CHROMOSOMES]
