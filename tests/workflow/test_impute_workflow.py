"""Run Snakemake itself on the tiny default config: DAG, full run, no-op rerun, stale-only reruns.

The tests in this module share one working directory and run in file order.
"""

import json
import shutil
import subprocess

import pandas as pd
import pytest

from tests.workflow.conftest import ROOT, SNAKEMAKE, planned_jobs, snakemake, snakemake_env, write_config

pytestmark = pytest.mark.workflow

IMPUTE_RULES = {"impute_simulate", "impute_vcf_to_h5", "impute_windows", "impute_split", "impute_array_sites", "impute_panel_vcf", "impute_target_vcf",
                "impute_beagle", "impute_minimac4_compress", "impute_minimac4", "impute_af_floor", "impute_evaluate", "impute_eval",
                "impute_plot", "impute_all", "impute_train", "impute_ragbert"}
TARGET = "impute_all"  # the imputation branch only; other branches have their own workflow tests


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("wf")


def test_lint_is_clean():
    res = subprocess.run([str(SNAKEMAKE), "--lint", "--snakefile", str(ROOT / "Snakefile")], cwd=ROOT,
                         capture_output=True, text=True, env=snakemake_env())
    assert res.returncode == 0 and "Congratulations" in res.stdout + res.stderr, res.stdout + res.stderr


def test_dry_run_lists_the_whole_dag(workdir):
    jobs = planned_jobs(snakemake(workdir, TARGET, "-n"))
    assert set(jobs) == IMPUTE_RULES
    assert jobs["impute_evaluate"] == 8  # beagle, minimac4, af_floor + 5 model variants
    assert jobs["impute_train"] == 5


def test_full_run_produces_the_report_table(workdir):
    snakemake(workdir, TARGET)
    table = pd.read_csv(workdir / "results/impute_eval.tsv", sep="\t")
    assert set(table.method) == {"beagle", "minimac4", "af_floor", "ragbert", "ragbert_noretrieval", "ragbert_meanpool",
                                    "ragbert_nocopying", "ragbert_copying_only"}
    bins = ["[0.000,0.005)", "[0.005,0.010)", "[0.010,0.050)", "[0.050,0.500]", "all"]
    assert set(bins[2:]) <= set(table.bin)
    allrow = table[table.bin == "all"].set_index("method")
    # real peers on a simulated panel impute far better than the allele-frequency floor (whose pooled
    # r2 is not 0: across sites, 2*AF tracks the mean dosage)
    assert allrow.loc["beagle", "r2"] > 0.8 and allrow.loc["minimac4", "r2"] > 0.8
    assert allrow.loc["af_floor", "r2"] < allrow.loc["beagle", "r2"] - 0.4
    for method, seconds in allrow.seconds.items():  # each method's recorded runtime, as its runtime.json says
        rt = json.loads((workdir / f"results/impute/{method}/runtime.json").read_text())
        assert seconds == pytest.approx(rt["seconds"], rel=1e-5)
    assert (workdir / "results/impute_r2_by_maf.png").stat().st_size > 10_000
    # the model learned something real from the panel (accuracy vs the peers is a reported target, not asserted)
    assert allrow.loc["ragbert", "r2"] > allrow.loc["af_floor", "r2"] + 0.2
    assert (workdir / "results/impute/ragbert/model/history.tsv").exists()
    for method in ("beagle", "minimac4", "af_floor", "ragbert"):
        vcf = workdir / f"results/impute/{method}/imputed.vcf.gz"
        res = subprocess.run(["bcftools", "view", "-H", str(vcf)], capture_output=True, text=True, check=True)
        assert res.stdout.count("\n") > 100
    log = (workdir / "logs/impute/vcf_to_h5.log").read_text()
    assert "multiallelic" in log


def test_report_holds_the_table_and_plots(workdir):
    snakemake(workdir, TARGET, "--report", str(workdir / "report.html"))
    html = (workdir / "report.html").read_text(errors="replace")
    for name in ("impute_eval.tsv", "impute_r2_by_maf.png"):
        assert name in html, f"{name} is not in the Snakemake report"


def test_second_run_does_nothing(workdir):
    res = snakemake(workdir, TARGET, "-n")
    assert "Nothing to be done" in res.stdout + res.stderr


def test_editing_one_variant_retrains_it_alone_and_enabled_false_leaves_one_out(workdir):
    cfg = write_config(workdir / "variants.yaml", {"impute": {"model": {"variants": {
        "ragbert_meanpool": {"pooling": "mean", "dropout": 0.2}, "ragbert_noretrieval": {"enabled": False}}}}})
    jobs = planned_jobs(snakemake(workdir, TARGET, "-n", configs=[cfg]))
    assert set(jobs) == {"impute_train", "impute_ragbert", "impute_evaluate", "impute_eval", "impute_plot", "impute_all"}
    assert jobs["impute_train"] == jobs["impute_ragbert"] == jobs["impute_evaluate"] == 1  # ragbert_meanpool alone
    res = snakemake(workdir, "-n", "--summary", "results/impute_eval.tsv", configs=[cfg])
    assert "ragbert_noretrieval" not in res.stdout  # left out of the table's inputs


def test_changing_bins_reruns_only_the_evaluation(workdir):
    cfg = write_config(workdir / "bins.yaml", {"impute": {"evaluate": {"maf_bins": [0.0, 0.02, 0.1, 0.5]}}})
    jobs = planned_jobs(snakemake(workdir, TARGET, "-n", configs=[cfg]))
    assert set(jobs) == {"impute_evaluate", "impute_eval", "impute_plot", "impute_all"}
    snakemake(workdir, TARGET, configs=[cfg])
    table = pd.read_csv(workdir / "results/impute_eval.tsv", sep="\t")
    assert "[0.100,0.500]" in set(table.bin)


def test_changing_min_maf_reruns_from_ingest_on(workdir):
    cfg = write_config(workdir / "maf.yaml", {"impute": {"ingest": {"min_maf": 0.02}}})
    jobs = planned_jobs(snakemake(workdir, TARGET, "-n", configs=[cfg]))
    assert "impute_simulate" not in jobs
    assert {"impute_vcf_to_h5", "impute_split", "impute_beagle", "impute_minimac4", "impute_evaluate"} <= set(jobs)


def test_bad_vcf_fails_clearly_and_leaves_no_artefact(tmp_path):
    bad = tmp_path / "bad.vcf.gz"
    bad.write_text("this is not a gzip file\n")
    panel = tmp_path / "panel.txt"
    panel.write_text("sample\tpop\tsuper_pop\tgender\nA\tP\tS\tmale\n")
    cfg = write_config(tmp_path / "bad.yaml", {"impute": {"data": {"source": "vcf", "vcf": str(bad), "panel": str(panel)}}})
    res = snakemake(tmp_path, "results/impute/panel.h5", configs=[cfg], check=False)
    assert res.returncode != 0
    log = (tmp_path / "logs/impute/vcf_to_h5.log").read_text()
    assert str(bad) in log and "gzip" in log.lower()
    assert not (tmp_path / "results/impute/panel.h5").exists()


def test_a_data_path_that_does_not_exist_is_named_before_any_job(tmp_path):
    cfg = write_config(tmp_path / "mine.yaml", {
        "impute": {"data": {"source": "vcf", "vcf": "my/panel.vcf.gz", "panel": "my/panel.txt"}},
        "textlm": {"corpus": {"source": "files", "files": ["my/books/*.txt"]}}})
    res = snakemake(tmp_path, "-n", TARGET, configs=[cfg], check=False)
    out = res.stdout + res.stderr
    assert res.returncode != 0 and "config names files that do not exist" in out
    for named in ("impute.data.vcf: my/panel.vcf.gz", "impute.data.panel: my/panel.txt",
                  "textlm.corpus.files: my/books/*.txt (matches no file)"):
        assert named in out, out[-3000:]
