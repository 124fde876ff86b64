"""Reruns redo only what is stale: nothing after a full run, one branch's affected rules after a config edit,
the downstream of a changed raw input, and a killed training job cleanly.

One full run of the cheapest branch end to end (the imputation peers on a small simulated panel, model
off) is shared by every test; the planning checks are dry runs (-n) and leave the directory as it was.
The killed-job test then trains one tiny model variant in the same directory. Tests run in file order.
"""

import gzip
import os
import shutil
import signal
import subprocess
import time

import cyvcf2
import pandas as pd
import pytest

from tests.workflow.conftest import ROOT, SNAKEMAKE, killed_outputs, planned_jobs, snakemake, snakemake_env, write_config

pytestmark = pytest.mark.workflow

TARGET = "impute_all"
TINY = {"impute": {
    "simulate": {"length": 300_000, "populations": {"YRI": 40, "CEU": 40, "CHB": 40}},
    "evaluate": {"bootstrap": 20},
    "model": {"enabled": False},
}}
# the model on, trained just long enough to be killed after its first checkpoint and resumed
MODEL = {"impute": {"model": {
    "enabled": True, "pairs_per_epoch": 256, "threads": 1,
    "train": {"max_epochs": 2, "warmup_steps": 2, "checkpoint_every_steps": 2, "device": "cpu"},
}}}
PEER_RULES = {"impute_vcf_to_h5", "impute_windows", "impute_split", "impute_array_sites", "impute_panel_vcf", "impute_target_vcf", "impute_beagle",
              "impute_minimac4_compress", "impute_minimac4", "impute_af_floor", "impute_evaluate", "impute_eval", "impute_plot",
              "impute_all"}
REPORT = {"impute_evaluate", "impute_eval", "impute_plot", "impute_all"}
UNPHASED = {"impute": {"split": {"targets_phased": False}}}  # the held-out targets phased like real ones
PHASED_TARGETS = "results/impute/inputs/targets.phased.vcf.gz"
NOTHING = "Nothing to be done"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("reruns")


@pytest.fixture(scope="module")
def tiny(workdir):
    return write_config(workdir / "tiny.yaml", TINY)


@pytest.fixture(scope="module")
def full_run(workdir, tiny):
    snakemake(workdir, TARGET, configs=[tiny], timeout=900)
    return workdir


def _plan(workdir, *configs, target=TARGET):
    res = snakemake(workdir, "-n", target, configs=configs)
    return planned_jobs(res), res.stdout + res.stderr


def test_after_a_full_run_nothing_reruns(full_run, tiny):
    assert (full_run / "results/impute_eval.tsv").is_file()
    jobs, out = _plan(full_run, tiny)
    assert jobs == {} and NOTHING in out


def test_editing_a_peer_option_reruns_only_that_peer_and_the_report(full_run, tiny):
    edit = write_config(full_run / "beagle_ne.yaml", {"impute": {"baselines": {"beagle_ne": 20_000}}})
    jobs, _ = _plan(full_run, tiny, edit)
    assert set(jobs) == {"impute_beagle"} | REPORT
    assert jobs["impute_evaluate"] == 1  # beagle's; minimac4 and af_floor are untouched


def test_a_peer_killed_after_an_edit_still_reruns_with_its_evaluation(full_run, tiny):
    # Snakemake removes a job's outputs when it starts; a job killed then leaves them missing while the
    # evaluation made with the old setting still exists. Where Snakemake keeps no record of the removed
    # outputs either (as seen after a killed impute_train; --cleanup-metadata here), only the setting
    # being a param of the evaluation too makes the next run redo the chain instead of "Nothing to be done".
    edit = write_config(full_run / "beagle_ne.yaml", {"impute": {"baselines": {"beagle_ne": 20_000}}})
    outputs = [f"results/impute/beagle/{name}" for name in ("imputed.vcf.gz", "imputed.vcf.gz.tbi", "runtime.json")]
    with killed_outputs(full_run, outputs, configs=[tiny]):
        jobs, _ = _plan(full_run, tiny, edit)
    assert set(jobs) == {"impute_beagle"} | REPORT and jobs["impute_evaluate"] == 1
    assert _plan(full_run, tiny)[0] == {}  # outputs back, old setting: nothing is stale


def test_editing_the_split_reruns_from_the_split_on(full_run, tiny):
    edit = write_config(full_run / "split.yaml", {"impute": {"split": {"seed": 43}}})
    jobs, _ = _plan(full_run, tiny, edit)
    # simulation, ingest and windows do not depend on the split
    assert set(jobs) == PEER_RULES - {"impute_vcf_to_h5", "impute_windows"}
    assert jobs["impute_evaluate"] == 3


def test_the_split_killed_after_an_edit_still_reruns_everything_below_it(full_run, tiny):
    # impute_split killed after a seed change, with no record of its removed output left: every later file
    # is of the old split; the split settings are params of each of them, so the same chain is planned
    edit = write_config(full_run / "split.yaml", {"impute": {"split": {"seed": 43}}})
    with killed_outputs(full_run, ["results/impute/split.tsv"], configs=[tiny]):
        jobs, _ = _plan(full_run, tiny, edit)
    assert set(jobs) == PEER_RULES - {"impute_vcf_to_h5", "impute_windows"} and jobs["impute_evaluate"] == 3


def _job_inputs(out, rule):
    """The ``input:`` line of each job of ``rule`` in a dry run's output."""
    lines = out.splitlines()
    return [lines[i + 1].strip() for i, line in enumerate(lines) if line.strip() == f"rule {rule}:"]


def test_unphased_targets_rerun_the_targets_and_what_imputes_them_only(full_run, tiny):
    edit = write_config(full_run / "unphased.yaml", UNPHASED)
    jobs, out = _plan(full_run, tiny, edit)
    # not the split, the array or the panel; af_floor reads no target VCF
    assert set(jobs) == {"impute_target_vcf", "impute_phase_targets", "impute_beagle", "impute_minimac4"} | REPORT
    assert jobs["impute_evaluate"] == 2
    for rule in ("impute_beagle", "impute_minimac4"):  # every method reads the phased file, not the unphased one
        (inputs,) = _job_inputs(out, rule)
        assert PHASED_TARGETS in inputs and "targets.vcf.gz" not in inputs.replace(PHASED_TARGETS, "")


def test_unphased_targets_are_phased_with_the_array_samples_and_sites(full_run, tiny, tmp_path):
    # in a copy of the full run (metadata and times kept), so the other tests see the phased-targets run as it was
    work = tmp_path / "unphased"
    shutil.copytree(full_run, work, symlinks=True)
    edit = write_config(work / "unphased.yaml", UNPHASED)
    snakemake(work, PHASED_TARGETS, configs=[tiny, edit], timeout=600)
    array = pd.read_csv(work / "results/impute/array_sites.tsv", sep="\t")
    split = pd.read_csv(work / "results/impute/split.tsv", sep="\t")
    unphased = cyvcf2.VCF(str(work / "results/impute/inputs/targets.vcf.gz"))
    phased = cyvcf2.VCF(str(work / PHASED_TARGETS))
    assert unphased.samples == phased.samples == split.loc[split.role == "test", "sample"].tolist()
    before, after = list(unphased), list(phased)
    assert [v.POS for v in before] == [v.POS for v in after] == array.pos.tolist()
    for u, p in zip(before, after):
        assert (u.REF, u.ALT) == (p.REF, p.ALT)
        gu, gp = u.genotype.array(), p.genotype.array()
        assert not gu[:, 2].any() and gp[:, 2].all()  # "/" in, "|" out
        # complete calls: phasing orders the alleles, it does not change the genotype
        assert (gp[:, :2] >= 0).all() and (gu[:, :2].sum(1) == gp[:, :2].sum(1)).all()
    assert "phasing" in (work / "logs/impute/phase_targets.log").read_text()


def test_editing_other_branches_reruns_nothing_here(full_run, tiny):
    other = write_config(full_run / "others.yaml", {
        "crispr": {"models": {"train": {"lr": 0.005}}, "split": {"seed": 1}},
        "textlm": {"train": {"learning_rate": 1.0e-3}, "data": {"block_size": 32}},
        "impute": {"model": {"hidden": 32, "train": {"lr": 1.0e-3}}},  # the model is off in this run
    })
    jobs, out = _plan(full_run, tiny, other)
    assert jobs == {} and NOTHING in out


def test_changing_the_raw_vcf_reruns_its_downstream_only(full_run, tiny):
    vcf = full_run / "resources/impute/simulated/panel.vcf.gz"
    data, before = vcf.read_bytes(), vcf.stat()
    try:
        # a newer time alone is not a change: Snakemake compares checksums of inputs under 1 MB
        os.utime(vcf, (before.st_atime, time.time() + 5))
        assert _plan(full_run, tiny)[0] == {}
        with open(vcf, "ab") as fh:
            fh.write(gzip.compress(b""))  # new content: an empty gzip member, which readers skip
        jobs, _ = _plan(full_run, tiny)
    finally:
        vcf.write_bytes(data)
        os.utime(vcf, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert set(jobs) == PEER_RULES and "impute_simulate" not in jobs
    assert _plan(full_run, tiny)[0] == {}  # the old file back: nothing is stale again


def test_killed_training_job_leaves_no_output_and_the_rerun_resumes(full_run, tiny):
    model = write_config(full_run / "model.yaml", MODEL)
    target = "results/impute/ragbert/model/history.tsv"
    outputs = [full_run / f"results/impute/ragbert/model/{name}" for name in ("best", "history.tsv",
                                                                                "train_runtime.json")]
    jobs, _ = _plan(full_run, tiny, model, target=target)
    assert jobs == {"impute_train": 1}  # turning the model on leaves every input of its training current

    cmd = [str(SNAKEMAKE), "--snakefile", str(ROOT / "Snakefile"), "--directory", str(full_run), "--configfile",
           str(ROOT / "config.yaml"), str(tiny), str(model), "--cores", "2", target]
    checkpoint = full_run / "results/impute/ragbert/model_work/last/trainer_state.json"
    with open(full_run / "killed.out", "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                env=snakemake_env())
        deadline = time.monotonic() + 300
        try:
            while not checkpoint.is_file():  # the job is mid-training, past its first checkpoint
                assert proc.poll() is None, (full_run / "killed.out").read_text()[-3000:]
                assert time.monotonic() < deadline, "no training checkpoint within 300 s"
                time.sleep(0.05)
        finally:
            os.killpg(proc.pid, signal.SIGTERM)  # Snakemake and its job, as a scheduler's cancel does
            proc.wait(timeout=120)
    assert proc.returncode != 0
    assert not [p for p in outputs if p.exists()]
    assert not (full_run / ".snakemake/locks").is_dir() or not any((full_run / ".snakemake/locks").iterdir())

    jobs, _ = _plan(full_run, tiny, model, target=target)
    assert jobs == {"impute_train": 1}
    snakemake(full_run, target, configs=[tiny, model], timeout=600)
    assert all(p.exists() for p in outputs)
    # Snakemake clears the log before the job starts again; the rerun continued from the kill's checkpoint
    log = (full_run / "logs/impute/train_ragbert.log").read_text()
    assert "resuming results/impute/ragbert/model_work/last" in log and "training on" not in log
    assert _plan(full_run, tiny, model, target=target)[0] == {}


def test_toggling_targets_phased_reimputes_with_the_trained_model_and_retrains_nothing(full_run, tiny):
    # after the training test above: its variant is trained and has not imputed yet
    model = write_config(full_run / "model.yaml", MODEL)
    edit = write_config(full_run / "unphased.yaml", UNPHASED)
    target = "results/impute/eval/ragbert.tsv"
    assert _plan(full_run, tiny, model, target=target)[0] == {"impute_ragbert": 1, "impute_evaluate": 1}
    jobs, out = _plan(full_run, tiny, model, edit, target=target)
    assert jobs == {"impute_target_vcf": 1, "impute_phase_targets": 1, "impute_ragbert": 1,
                    "impute_evaluate": 1}  # no impute_train
    (inputs,) = _job_inputs(out, "impute_ragbert")
    assert PHASED_TARGETS in inputs
