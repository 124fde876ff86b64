"""Kill anywhere: every branch's workflow, SIGKILLed at seeded random moments, ends with the tables of an
uninterrupted run and leaves no temporary behind.

One uninterrupted run of every branch (config.yaml cut to one small model per branch, as the report
test cuts it) gives the reference tables and how long each training job runs. The same workflow then
runs in a second directory under a chaos monkey that kills Snakemake and all its jobs (SIGKILL to the
process group, as a crashed node or an OOM killer would) at seeded moments: once inside each training
rule (just after its job saves a checkpoint, so that it resumes from it, or at a random fraction of its
reference duration if that comes first) and once while a step writes an artefact (an atomic temporary
is on disk). After every kill Snakemake is unlocked and
started again with ``--rerun-incomplete``, as the profiles run it. The final tables must equal the
reference's value for value (times and speeds aside), the two runs must hold the same files, and no
temporary of a killed step may remain.

Minutes on 2 cores (two whole runs); marked slow, part of ``make test``.
"""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.workflow.conftest import ROOT, SNAKEMAKE, snakemake_env
from tests.workflow.test_workflow_report import small_config

pytestmark = [pytest.mark.workflow, pytest.mark.slow]

SEED = 20261207
TARGETS = ["results/impute_eval.tsv", "results/crispr_eval.tsv", "results/scrna_eval.tsv", "results/textlm_eval.tsv"]
# a training rule -> what its job's command line holds (Snakemake runs a rule's script as .snakemake/scripts/tmpXXXX.<name>)
TRAINING = {"impute_train": ".impute_train_ragbert.py", "crispr_train": ".crispr_train.py",
            "scrna_train": ".scrna_train.py", "textlm_train": ".textlm_train.py"}
# a temporary of omicslm.io.atomic (.<target>.tmp<pid>-...), a checkpoint's spent .old, a stray tempfile folder
TEMPORARY = re.compile(r"^\..+\.tmp\d+-|^\..+\.old$|^tmp[a-z0-9_]{8}$")
# columns that measure time or speed, not results: they differ between any two runs
TIMING = re.compile(r"second|time|_s$|per_s|wall|rss|throughput|tokens_s")
POLL_S = 0.05
TIMEOUT_S = 1500


def _config(workdir: Path) -> Path:
    cfg = small_config()
    path = workdir / "chaos.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _session(sid: int) -> list[str]:
    """Command lines of the live processes of session ``sid`` (Snakemake and its jobs)."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            stat = Path(f"/proc/{d}/stat").read_text()
            if int(stat.rsplit(")", 1)[1].split()[3]) != sid:  # after "(comm)": state ppid pgrp session
                continue
            out.append(Path(f"/proc/{d}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
        except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
            continue
    return out


def _temporaries(workdir: Path, *, writes_only: bool = False) -> list[Path]:
    """Temporaries under ``workdir`` (Snakemake's own .snakemake folder aside); ``writes_only``: atomic write files."""
    found = []
    for top in ("results", "resources", "logs"):
        for root, dirs, files in os.walk(workdir / top):
            for name in dirs + files:
                if TEMPORARY.match(name) and not (writes_only and (name in dirs or name.endswith(".scratch"))):
                    found.append(Path(root, name).relative_to(workdir))
    return found


def _checkpoint_since(branch: Path, t0: float) -> Path | None:
    """A resumable checkpoint (the shared loop's ``last``, a Trainer ``checkpoint-N``) under ``branch`` saved after ``t0``."""
    for root, dirs, _ in os.walk(branch):
        for name in dirs:
            if name == "last" or name.startswith("checkpoint-"):
                p = Path(root, name)
                try:
                    if p.stat().st_mtime >= t0:
                        return p
                except FileNotFoundError:
                    continue
    return None


def _snakemake(workdir: Path, config: Path, *args: str, **kw) -> subprocess.Popen:
    cmd = [str(SNAKEMAKE), "--snakefile", str(ROOT / "Snakefile"), "--directory", str(workdir), "--configfile",
           str(config), "--cores", "2", "--rerun-incomplete", *args]
    with open(workdir / "snakemake.out", "a") as log:  # the child keeps its own descriptor
        return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                env=snakemake_env(), **kw)


def _run(workdir: Path, config: Path, watch) -> bool:
    """Snakemake on TARGETS until it ends (True) or ``watch(live command lines, now)`` says kill (False)."""
    proc = _snakemake(workdir, config, *TARGETS)
    deadline = time.monotonic() + TIMEOUT_S
    while proc.poll() is None:
        if time.monotonic() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            raise AssertionError(f"snakemake ran past {TIMEOUT_S} s; see {workdir / 'snakemake.out'}")
        if watch(_session(proc.pid), time.monotonic()):
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return False
        time.sleep(POLL_S)
    if proc.returncode != 0:
        raise AssertionError(f"snakemake failed ({proc.returncode}): {(workdir / 'snakemake.out').read_text()[-5000:]}")
    return True


def _tables(workdir: Path) -> dict[str, pd.DataFrame]:
    out = {}
    for t in TARGETS:
        df = pd.read_csv(workdir / t, sep="\t")
        out[t] = df[[c for c in df.columns if not TIMING.search(c)]]
    return out


def _files(workdir: Path) -> set[str]:
    """The artefacts under results/ and resources/ (TensorBoard event files aside: one per process that wrote curves,
    named by its start time)."""
    return {str(p.relative_to(workdir)) for top in ("results", "resources") for p in (workdir / top).rglob("*")
            if p.is_file() and "tfevents" not in p.name}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted run: its directory and the seconds each training rule's job ran."""
    workdir = tmp_path_factory.mktemp("chaos_ref")
    config = _config(workdir)
    first, last = {}, {}

    def watch(cmds, now):
        for rule, mark in TRAINING.items():
            if any(mark in c for c in cmds):
                first.setdefault(rule, now)
                last[rule] = now
        return False

    assert _run(workdir, config, watch)
    missing = set(TRAINING) - set(first)
    assert not missing, f"the reference run ran no job of {missing}: the chaos test cannot kill inside them"
    return workdir, {rule: last[rule] - first[rule] for rule in TRAINING}


def test_killed_anywhere_the_workflow_ends_with_the_uninterrupted_tables_and_no_temporaries(reference, tmp_path, capsys):
    ref_dir, durations = reference
    config = _config(tmp_path)
    rng = random.Random(SEED)
    # each training rule is killed once: just after its job saves a checkpoint (then it resumes from it), or at a
    # random fraction of its reference duration if that comes first; one kill lands in a write
    when = {rule: rng.uniform(0.5, 0.9) * durations[rule] for rule in TRAINING}
    pending = set(TRAINING) | {"write"}
    kills: list[str] = []
    for _ in range(len(pending) + 10):
        started: dict[str, float] = {}

        def watch(cmds, now):
            for rule in sorted(pending - {"write"}):
                if any(TRAINING[rule] in c for c in cmds):
                    started.setdefault(rule, (now, time.time()))
                    t0, t0_wall = started[rule]
                    saved = _checkpoint_since(tmp_path / "results" / rule.split("_")[0], t0_wall)
                    if saved is not None or now - t0 >= when[rule]:
                        pending.discard(rule)
                        where = (f"just after it saved {saved.relative_to(tmp_path)}" if saved is not None
                                 else "before its first checkpoint")
                        kills.append(f"inside {rule}, {now - t0:.1f} s into its job (reference "
                                     f"{durations[rule]:.1f} s), {where}")
                        return True
            if "write" in pending:
                writing = _temporaries(tmp_path, writes_only=True)
                if writing:
                    pending.discard("write")
                    kills.append(f"inside a write of {writing[0]}")
                    return True
            return False

        done = _run(tmp_path, config, watch)
        if done:
            break
        unlock = _snakemake(tmp_path, config, "--unlock")
        assert unlock.wait(timeout=300) == 0
    with capsys.disabled():  # in make test's output too
        print(f"\nkills survived: {len(kills)}\n  " + "\n  ".join(kills))
    assert not pending, f"no kill landed inside {sorted(pending)} (jobs ended first); kills: {kills}"
    assert len(kills) >= 5

    stray = _temporaries(tmp_path)
    assert not stray, f"temporaries of killed steps remain: {stray}"
    assert _files(tmp_path) == _files(ref_dir)
    ours, theirs = _tables(tmp_path), _tables(ref_dir)
    for t in TARGETS:
        pd.testing.assert_frame_equal(ours[t], theirs[t], check_exact=True, obj=t)
