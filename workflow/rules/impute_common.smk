# Constants, input functions and the rerun table of the imputation branch (kept apart from its rules,
# as --lint asks). Defaults of optional keys are in the schema (validate(..., set_default=True)).

IMPUTE = config["impute"]
IMPUTE_DIR = "results/impute"
IMPUTE_MODEL = IMPUTE["model"]
IMPUTE_BASELINES = IMPUTE["baselines"]
MODEL_VARIANTS = list(IMPUTE_MODEL["variants"]) if IMPUTE_MODEL["enabled"] else []
MODEL_RESOURCES = IMPUTE_MODEL["resources"]
# the validation r² bins of the model: its own, else the evaluation's
MODEL_VAL_MAF_BINS = IMPUTE_MODEL["val_maf_bins"] or IMPUTE["evaluate"]["maf_bins"]
# every method scored in results/impute_eval.tsv: the peers, then the model variants
IMPUTE_METHODS = list(IMPUTE_BASELINES["methods"]) + MODEL_VARIANTS
IMPUTE_GENETIC_MAP = bool(IMPUTE["data"]["genetic_map"])


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


def impute_method_step(method):
    """The step that writes ``method``'s imputed VCF (a model variant's is impute_ragbert/<variant>)."""
    return f"impute_ragbert/{method}" if method in MODEL_VARIANTS else f"impute_{method}"


# What each step is made with (config name -> value) and which steps it reads: settings_above (common.smk)
# turns these into each rule's rerun key. "data" is the raw input (the simulation or the user's files).
_gmap = ["impute_genetic_map"] if IMPUTE_GENETIC_MAP else []
IMPUTE_SETTINGS = {
    "impute_simulate": {"impute.simulate": IMPUTE["simulate"]},
    "data": {"impute.data": IMPUTE["data"]},
    "impute_vcf_to_h5": {"impute.ingest": IMPUTE["ingest"]},
    "impute_windows": {"impute.windows": IMPUTE["windows"]},
    "impute_split": {"impute.split": IMPUTE["split"]},
    "impute_array_sites": {"impute.array": IMPUTE["array"]},
    "impute_beagle": {"impute.baselines.beagle_ne": IMPUTE_BASELINES["beagle_ne"],
                      "impute.baselines.seed": IMPUTE_BASELINES["seed"]},
    **{f"impute_train/{v}": {"impute.model": IMPUTE_MODEL, "impute.model.val_maf_bins": MODEL_VAL_MAF_BINS}
       for v in MODEL_VARIANTS},
    **{f"impute_ragbert/{v}": {"impute.model.batch_size": IMPUTE_MODEL["batch_size"],
                               "impute.model.train.device": IMPUTE_MODEL["train"]["device"]} for v in MODEL_VARIANTS},
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
    "impute_beagle": ["impute_panel_vcf", "impute_target_vcf", *_gmap],
    "impute_minimac4_compress": ["impute_panel_vcf"],
    "impute_minimac4": ["impute_minimac4_compress", "impute_target_vcf", *_gmap],
    "impute_af_floor": ["impute_vcf_to_h5", "impute_split"],
    **{f"impute_train/{v}": ["impute_vcf_to_h5", "impute_split", "impute_array_sites", "impute_windows", *_gmap]
       for v in MODEL_VARIANTS},
    **{f"impute_ragbert/{v}": [f"impute_train/{v}", "impute_vcf_to_h5", "impute_split", "impute_target_vcf",
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
