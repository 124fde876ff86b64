"""The executor profiles: valid Snakemake options, real rule names, and one GPU + one task per GPU rule.

tests/workflow/test_slurm.py runs the SLURM profile on a real (localhost) cluster where root can
start one; these checks run everywhere.
"""

import re

import pytest
import yaml

from tests.workflow.conftest import ROOT, planned_jobs, snakemake

pytestmark = pytest.mark.workflow

PROFILES = ROOT / "profiles"


def rule_bodies() -> dict[str, str]:
    """Rule name -> the indented text of its definition, over workflow/rules/*.smk."""
    bodies = {}
    for smk in sorted((ROOT / "workflow/rules").glob("*.smk")):
        for m in re.finditer(r"^rule (\w+):\n(.*?)(?=^\S|\Z)", smk.read_text(), re.M | re.S):
            bodies[m[1]] = m[2]
    return bodies


def profile(name: str) -> dict:
    return yaml.safe_load((PROFILES / name / "config.yaml").read_text())


def test_slurm_profile_submits_with_account_partition_memory_and_time():
    slurm = profile("slurm")
    assert slurm["executor"] == "slurm" and slurm["jobs"] > 0  # the plugin refuses to run without --jobs
    assert {"slurm_account", "slurm_partition", "mem_mb", "runtime"} <= set(slurm["default-resources"])


def test_every_gpu_rule_gets_gpus_one_task_and_its_cpus_as_threads():
    bodies = rule_bodies()
    gpu_rules = {name for name, body in bodies.items() if re.search(r"^\s+gpu\s*=", body, re.M)}
    assert {"impute_train", "crispr_train", "textlm_train"} <= gpu_rules
    per_rule = profile("slurm")["set-resources"]
    assert set(per_rule) <= set(bodies), f"set-resources names no rule: {set(per_rule) - set(bodies)}"
    assert gpu_rules <= set(per_rule), f"GPU rules without SLURM resources: {gpu_rules - set(per_rule)}"
    for name, res in per_rule.items():
        # --gpus or --gres, never both; a GRES string needs inner quotes to stay a string for Snakemake
        assert (res.get("gpu", 0) > 0) != ("gres" in res), name
        if "gres" in res:
            assert re.fullmatch(r"'gpu(:[\w.]+)?:\d+'", res["gres"]), f"{name}: gres {res['gres']!r}"
        # one SLURM task whatever the GPU count: no --ntasks-per-gpu (torchrun starts the per-GPU processes)
        assert res["tasks_per_gpu"] == 0 and "tasks" not in res, name
        assert {"slurm_partition", "cpus_per_task", "mem_mb", "runtime"} <= set(res), name
    assert profile("slurm")["set-threads"] == {name: res["cpus_per_task"] for name, res in per_rule.items()}


@pytest.mark.parametrize("name", ["local", "slurm"])
def test_profile_is_accepted_by_snakemake(name, tmp_path):
    res = snakemake(tmp_path, "-n", "impute_all", "--profile", str(PROFILES / name))
    assert planned_jobs(res)["impute_evaluate"] >= 3
