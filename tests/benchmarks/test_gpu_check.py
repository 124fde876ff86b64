"""benchmarks/gpu_check.sh --cpu-smoke: every step of the GPU check at toy size on CPU (issue 21).

One run (about 75 s on 2 cores) shared by the tests of this module; marked ``workflow`` (it runs
Snakemake), so ``make test-fast`` skips it.
"""

import csv
import subprocess
from pathlib import Path

import pytest

from tests.workflow.conftest import snakemake_env

pytestmark = pytest.mark.workflow

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "gpu_check.sh"
STEPS = ["setup", "a_correctness", "a_resume", "b_impute_speed", "c_textlm_throughput", "d_peak_gpu_memory"]


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu_check")
    env = {k: v for k, v in snakemake_env().items() if k != "OUT"}  # its Snakemake runs start without a 9 s wait
    res = subprocess.run(["bash", str(SCRIPT), "--cpu-smoke", "--out", str(out)], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=300)
    tsv = out / "gpu_check.tsv"
    assert tsv.is_file(), f"no {tsv}; exit {res.returncode}\n{res.stdout[-4000:]}\n{res.stderr[-4000:]}"
    with open(tsv, newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE))
    return res, rows


def value(rows, step, metric):
    found = [r["value"] for r in rows if r["step"] == step and r["metric"] == metric]
    assert len(found) == 1, f"{step} {metric}: {found}"
    return found[0]


def test_every_step_has_rows_and_none_failed(smoke):
    res, rows = smoke
    assert list(rows[0]) == ["step", "metric", "value", "unit", "note"]
    assert {r["step"] for r in rows} == set(STEPS)
    status = {r["step"]: (r["value"], r["note"]) for r in rows if r["metric"] == "status"}
    assert set(status) == set(STEPS)
    assert not {s: v for s, v in status.items() if v[0] == "failed"}, status
    # without CUDA the CPU-vs-CUDA comparison and the GPU memory are skipped, with the reason
    assert status["a_correctness"][0] == "skipped" and "no CUDA" in status["a_correctness"][1]
    assert status["a_resume"][0] == status["b_impute_speed"][0] == status["c_textlm_throughput"][0] == "ok"
    assert res.returncode == 0, res.stdout[-4000:]
    assert "step\tmetric\tvalue\tunit\tnote" in res.stdout  # the TSV is printed at the end


def test_the_cpu_pass_wrote_every_training_rules_metric(smoke):
    _, rows = smoke
    for metric in ("impute_train.best_val_r2_all", "crispr_pretrain.best_val_loss", "crispr_train.best_val_loss",
                   "scrna_train.best_val_loss", "textlm_train.last_eval_loss"):
        assert float(value(rows, "a_correctness", f"cpu.{metric}")) > 0


def test_the_killed_job_resumed_where_it_stopped(smoke):
    _, rows = smoke
    killed = int(value(rows, "a_resume", "killed_at_global_step"))
    assert killed > 0 and int(value(rows, "a_resume", "resumed_at_global_step")) == killed
    assert float(value(rows, "a_resume", "history_max_abs_diff_vs_uninterrupted")) == 0.0  # CPU: bit for bit


def test_imputation_speed_and_text_lm_throughput_are_positive(smoke):
    _, rows = smoke
    assert float(value(rows, "b_impute_speed", "ratio_vs_beagle.ragbert impute (cpu)")) > 0
    assert float(value(rows, "c_textlm_throughput", "tokens_per_s")) > 0


def test_help_explains_the_modes():
    res = subprocess.run(["bash", str(SCRIPT), "--help"], capture_output=True, text=True, timeout=30)
    assert res.returncode == 0 and "--cpu-smoke" in res.stdout and "gpu_check.tsv" in res.stdout
