# Shared input functions and constants for all branches.
import os

# Jobs import the omicslm package from this checkout, also inside --sdm conda environments
# (which hold only its dependencies) and on cluster nodes that inherit the environment.
os.environ.update(PYTHONPATH=os.pathsep.join(p for p in (workflow.basedir, os.environ.get("PYTHONPATH")) if p))

IMPUTE = config["impute"]
IMPUTE_DIR = "results/impute"


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


def impute_genetic_map(wildcards):
    """PLINK-format map (Beagle and minimac4) when config gives a genetic map, else nothing."""
    return f"{IMPUTE_DIR}/inputs/genetic_map.plink.map" if IMPUTE["data"]["genetic_map"] else []


def impute_methods():
    """Every method scored in results/impute_eval.tsv: the peers, then the model variants."""
    methods = list(IMPUTE["baselines"]["methods"])
    model = IMPUTE.get("model") or {}
    if model.get("enabled", True):
        methods += list(model.get("variants") or [])
    return methods


IMPUTE_METHODS = impute_methods()
def upstream_settings(step_settings, steps):
    """The settings of the named data steps (keys of ``step_settings``): a param of every step below them.

    Snakemake removes a job's outputs when it starts and, where it keeps no record of them, does not
    go back for a missing intermediate whose downstream files exist. So a data step (say a split
    after a seed change) killed mid-run would leave every later file of the old settings standing.
    With the settings of the steps above it as params, each later step sees the change itself and
    the chain is redone. A step lists only the steps it descends from, so an edit reruns nothing
    that was not stale already. Every branch uses this (impute_upstream, crispr_upstream, ...).
    """
    return {s: step_settings[s] for s in steps}


# the settings of each data step of the imputation branch, for impute_upstream
IMPUTE_STEP_SETTINGS = {
    "data": {"data": IMPUTE["data"],
             "simulate": IMPUTE["simulate"] if IMPUTE["data"]["source"] == "simulate" else None},
    "ingest": IMPUTE["ingest"],
    "windows": IMPUTE["windows"],
    "split": IMPUTE["split"],
    "array": IMPUTE["array"],
}


def impute_upstream(*steps):
    """:func:`upstream_settings` of the imputation data steps."""
    return upstream_settings(IMPUTE_STEP_SETTINGS, steps)


def impute_method_settings(method):
    """The config a method's imputed VCF is made with: a param of the steps downstream of it too.

    Snakemake removes a job's outputs when it starts and, on the next run, does not go back for
    a missing intermediate file whose downstream files exist. So after a parameter change, a
    killed beagle / train_ragbert job would leave the old evaluation standing ("Nothing to be
    done"). With the settings also a param downstream, the params trigger sees the change there
    and the chain reruns from the killed step.
    """
    model = IMPUTE.get("model") or {}
    if method in (model.get("variants") or {}):
        return {"model": model, "upstream": impute_upstream("data", "ingest", "windows", "split", "array")}
    if method == "af_floor":  # panel allele frequencies of the reference samples: no array sites
        return {"upstream": impute_upstream("data", "ingest", "split")}
    out = {"upstream": impute_upstream("data", "ingest", "split", "array")}
    if method == "beagle":
        b = IMPUTE["baselines"]
        out.update(ne=b.get("beagle_ne"), seed=b.get("seed", 1))
    return out
