"""The workflow on a real SLURM cluster through ``--profile profiles/slurm``.

scripts/start_slurm_localhost.sh starts a single-node cluster on this machine (munged, MariaDB,
slurmdbd, slurmctld, slurmd; scripts/install_slurm.sh installs them, ``make test`` runs it). That
needs root on Debian/Ubuntu: elsewhere the test skips, and ``pytest -rs`` prints why.

The peers' part of the imputation branch runs locally first; a copy of that working directory then
redoes the peers and everything downstream of them as SLURM jobs (the whole DAG would cost two
Snakemake start-ups per job plus the plugin's status polling, minutes on 2 cores). ``sacct`` must
show one completed job per rule job, and the table must equal the local one.
"""

import os
import re
import shutil
import subprocess

import pandas as pd
import pytest
import yaml

from tests.workflow.conftest import ROOT, planned_jobs, snakemake, write_config

pytestmark = pytest.mark.workflow

START = ROOT / "scripts/start_slurm_localhost.sh"
PROFILE = ROOT / "profiles/slurm"
TOOLS = ("munged", "slurmctld", "slurmd", "slurmdbd", "mariadbd", "sbatch", "sacct")
TARGET = "results/impute_eval.tsv"
SMALL = {"impute": {
    "model": {"enabled": False},  # the peers only: training is not what this test is about
    "simulate": {"length": 300_000, "populations": {"YRI": 30, "CEU": 30, "CHB": 30}},
    "baselines": {"threads": 1},  # two peers side by side on a 2-CPU node
    "evaluate": {"bootstrap": 20},
}}
RERUN = ("impute_af_floor", "impute_beagle", "impute_minimac4")  # SLURM redoes these and everything downstream
GPU_STAND_IN = "impute_af_floor"  # submitted with impute_train's GPU resources from the profile
RUNTIME_COLUMNS = {"seconds"}


@pytest.fixture(scope="module")
def slurm_cluster():
    """A running localhost cluster; stopped afterwards only if this fixture started it."""
    if os.geteuid() != 0:
        pytest.skip("SLURM test: not root; the localhost cluster needs root (run as root, as .ci/run does)")
    path = os.environ.get("PATH", "") + ":/usr/sbin:/sbin"
    missing = [t for t in TOOLS if shutil.which(t, path=path) is None]
    if missing:
        pytest.skip(f"SLURM test: {', '.join(missing)} not installed (scripts/install_slurm.sh installs them on Debian)")
    res = subprocess.run(["bash", str(START)], capture_output=True, text=True, timeout=300)
    if res.returncode != 0:
        pytest.skip(f"SLURM test: the localhost cluster did not come up: {res.stderr.strip()[-500:]}")
    started_here = "already running" not in res.stdout

    def stop():
        if started_here:
            subprocess.run(["bash", str(START), "--stop"], capture_output=True, text=True, timeout=300)

    node_mb = int(subprocess.run(["sinfo", "-h", "-N", "-o", "%m"], capture_output=True, text=True).stdout.split()[0])
    profile_mb = yaml.safe_load((PROFILE / "config.yaml").read_text())["default-resources"]["mem_mb"]
    if node_mb < profile_mb:
        stop()
        pytest.skip(f"SLURM test: this machine has {node_mb} MB, less than the profile's default mem_mb {profile_mb}")
    yield res.stdout.strip()
    stop()


def node_gpus() -> int:
    """GPUs (GRES gpu) of the localhost node: its NVIDIA devices, else the start script's two stand-ins."""
    gres = subprocess.run(["sinfo", "-h", "-N", "-o", "%G"], capture_output=True, text=True, check=True).stdout
    return int(re.search(r"gpu(?::[\w.]+)?:(\d+)", gres)[1])


def gpu_stand_in_resources(gpus: int) -> list[str]:
    """``--set-resources`` giving GPU_STAND_IN the profile's impute_train request, fitted to a small node."""
    profile = yaml.safe_load((PROFILE / "config.yaml").read_text())
    train = dict(profile["set-resources"]["impute_train"], gpu=gpus, cpus_per_task=1, mem_mb=2000, runtime=30)
    return [f"{GPU_STAND_IN}:{key}={value}" for key, value in train.items()]


def sacct_jobs(run_id: str) -> pd.DataFrame:
    """Every job and step SLURM accounted under the plugin's run id (its job name)."""
    fields = ["JobID", "JobName", "Comment", "State", "Partition", "Account", "AllocTRES", "NTasks"]
    out = subprocess.run(["sacct", "-n", "-P", "--name", run_id, "--format", ",".join(fields)],
                         capture_output=True, text=True, check=True).stdout
    return pd.DataFrame([line.split("|") for line in out.splitlines() if line], columns=fields)


def numbers(path) -> pd.DataFrame:
    table = pd.read_csv(path, sep="\t")
    return table.drop(columns=sorted(RUNTIME_COLUMNS & set(table.columns)))


def test_peers_run_as_slurm_jobs_and_match_a_local_run(slurm_cluster, tmp_path):
    cfg = write_config(tmp_path / "small.yaml", SMALL)
    local, cluster = tmp_path / "local", tmp_path / "cluster"
    local.mkdir()
    snakemake(local, TARGET, configs=[cfg])
    shutil.copytree(local, cluster, symlinks=True)

    gpus = min(2, node_gpus())  # more than one where the node has them: one task must still hold them all
    res = snakemake(cluster, TARGET, "--profile", str(PROFILE), "--slurm-init-seconds-before-status-checks", "5",
                    "--set-resources", *gpu_stand_in_resources(gpus), "--forcerun", *RERUN, configs=[cfg], slurm=True)
    log = res.stdout + res.stderr
    planned = planned_jobs(res)
    assert planned == {"impute_af_floor": 1, "impute_beagle": 1, "impute_minimac4": 1, "impute_evaluate": 3, "impute_eval": 1}

    run_id = re.search(r"SLURM run ID: (\S+)", log)[1]
    acct = sacct_jobs(run_id)
    jobs = acct[~acct.JobID.str.contains(r"\.")]
    # the plugin puts rule_<rule>[_wildcards_<values>] in the job comment
    rules = jobs.Comment.str.extract(r"^rule_(.+?)(?:_wildcards_.*)?$")[0]
    assert rules.value_counts().to_dict() == planned, acct.to_string()
    assert (jobs.State == "COMPLETED").all(), acct.to_string()
    assert (jobs.Account == "omicslm").all()

    gpu_job = jobs[rules == GPU_STAND_IN].iloc[0]
    assert gpu_job.Partition == "omicslm_gpu" and f"gres/gpu={gpus}" in gpu_job.AllocTRES, acct.to_string()
    # tasks_per_gpu: 0 in the profile: one task holding every GPU and cpus_per_task cores (not one per
    # GPU), and the rule ran once, in one srun step of one task
    assert "cpu=1," in gpu_job.AllocTRES, acct.to_string()
    steps = acct[acct.JobID.str.startswith(f"{gpu_job.JobID}.")].set_index("JobID").NTasks
    assert steps.to_dict() == {f"{gpu_job.JobID}.batch": "1", f"{gpu_job.JobID}.0": "1"}, acct.to_string()
    assert set(jobs[rules != GPU_STAND_IN].Partition) == {"omicslm_cpu"}

    pd.testing.assert_frame_equal(numbers(cluster / TARGET), numbers(local / TARGET))
