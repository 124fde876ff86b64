"""Run Snakemake on a tiny single-cell config: fetch -> ingest -> tokenize -> train -> results/scrna_eval.tsv.

Needs the package index (the default data sets are fetched from scanpy's sdist at run time); the
tests in this module share one working directory and run in file order.
"""

import json
import math

import numpy as np
import pandas as pd
import pytest

from tests.workflow.conftest import killed_outputs, planned_jobs, snakemake, write_config

pytestmark = pytest.mark.workflow

TARGET = "scrna_all"
RULES = {"scrna_fetch_scanpy", "scrna_ingest", "scrna_tokenize", "scrna_baselines", "scrna_train", "scrna_evaluate",
         "scrna_eval", "scrna_plot", "scrna_all"}
TINY = {"scrna": {"datasets": {"brain10k": {"max_cells": 300}}, "tokenize": {"seq_len": 32}, "steps_per_epoch": 5,
                  "train": {"max_epochs": 2, "warmup_steps": 2}, "evaluate": {"max_val_cells": 50}}}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    path = tmp_path_factory.mktemp("scrna_wf")
    write_config(path / "tiny.yaml", TINY)
    return path


def test_tiny_run_writes_the_eval_table(workdir):
    jobs = planned_jobs(snakemake(workdir, TARGET, configs=[workdir / "tiny.yaml"], timeout=600))
    assert set(jobs) == RULES
    assert jobs["scrna_ingest"] == 2 and jobs["scrna_tokenize"] == 2  # two data sets, one binning (clip100)
    assert jobs["scrna_train"] == jobs["scrna_evaluate"] == 4         # x two models (seed_ce, clip_ordinal)
    table = pd.read_csv(workdir / "results/scrna_eval.tsv", sep="\t")
    assert set(table["split"]) == {"test"}
    for dataset in ("brain10k", "pbmc68k"):
        rows = table[table["dataset"] == dataset].set_index("method")
        assert {"random", "per_gene_marginal", "per_cell_mean", "seed_ce", "clip_ordinal"} <= set(rows.index)
        assert rows.loc["random", "masked_loss"] == pytest.approx(math.log(100))   # the seed's 4.605
        # every method scored at the same masked positions of the same held-out cells
        counted = rows[rows["kind"] != "embedding_baseline"]
        assert counted["masked_tokens"].nunique() == 1 and counted["cells"].nunique() == 1
        # even 10 steps leave the uniform guess far behind (a learning model, unlike the seed's)
        assert (rows.loc[["seed_ce", "clip_ordinal"], "masked_loss"] < 3.0).all()
    pbmc = table[table["dataset"] == "pbmc68k"].set_index("method")
    assert pbmc.loc["pca_lognorm", "knn_accuracy"] > 0.5                     # bulk_labels are learnable from counts
    assert pbmc.loc["scanpy_hvg_pca", "knn_accuracy"] > 0.5                  # the scanpy recipe, run by scanpy
    assert pbmc.loc["scvi", "knn_accuracy"] > 0.5                            # scvi-tools' SCVI on the training cells
    assert pbmc.loc[["seed_ce", "clip_ordinal"], "knn_accuracy"].notna().all()
    assert table[table["dataset"] == "brain10k"]["knn_accuracy"].isna().all()  # no labels: no embedding metrics
    ingest = json.loads((workdir / "results/scrna/pbmc68k/ingest_summary.json").read_text())
    assert ingest["cells"] == 700 and ingest["labelled_cells"] == 700          # counts recovered from .raw
    assert (workdir / "results/scrna_loss_curves.png").read_bytes()[:4] == b"\x89PNG"
    assert (workdir / "results/scrna/brain10k/seed_ce/work/last/model.safetensors").is_file()


def test_a_data_set_or_model_can_be_left_out_by_a_preset(tmp_path):
    # a preset merged over config.yaml cannot remove a key: enabled: false leaves the entry out
    write_config(tmp_path / "tiny.yaml", TINY)
    off = write_config(tmp_path / "off.yaml", {"scrna": {"datasets": {"brain10k": {"enabled": False}},
                                                         "models": {"clip_ordinal": {"enabled": False}}}})
    jobs = planned_jobs(snakemake(tmp_path, "-n", TARGET, configs=[tmp_path / "tiny.yaml", off]))
    assert jobs["scrna_ingest"] == jobs["scrna_tokenize"] == jobs["scrna_train"] == jobs["scrna_evaluate"] == 1


def test_second_run_does_nothing(workdir):
    res = snakemake(workdir, "-n", TARGET, configs=[workdir / "tiny.yaml"])
    assert "Nothing to be done" in res.stdout + res.stderr


def test_scrna_embed_applies_the_trained_model_to_your_cells(workdir):
    import anndata as ad

    # your cells: here the pbmc68k file again, read as a user's own (its block as a data set's)
    cfg = write_config(workdir / "embed.yaml", {"scrna": {"embed": {"sets": {"my_cells": {
        "source": "scanpy_pbmc68k", "matrix": "raw", "lognorm": {"total_column": "n_counts", "target_sum": 10000},
        "integer_tolerance": 0.1, "label_column": "bulk_labels"}}}}})
    configs = [workdir / "tiny.yaml", cfg]
    assert planned_jobs(snakemake(workdir, "-n", TARGET, configs=configs)) == {
        "scrna_embed_ingest": 1, "scrna_embed": 1, "scrna_embed_umap": 1, "scrna_all": 1}  # nothing retrains
    snakemake(workdir, TARGET, configs=configs, timeout=600)
    adata = ad.read_h5ad(workdir / "results/scrna/embed/my_cells.h5ad")
    assert adata.n_obs == 700 and adata.obsm["X_omicslm"].shape == (700, 64) and adata.obsm["X_pca"].shape[0] == 700
    assert adata.obsm["X_scvi"].shape == (700, 10)
    assert adata.uns["omicslm"]["model"] == "pbmc68k/seed_ce"  # the default: the first model, first labelled set
    assert adata.uns["omicslm"]["genes_not_in_vocab"] == 0 and adata.obs["label"].nunique() == 10
    assert (workdir / "results/scrna/embed/my_cells_umap.png").read_bytes()[:4] == b"\x89PNG"
    assert "700 cells embedded by pbmc68k/seed_ce" in (workdir / "logs/scrna/embed_my_cells.log").read_text()


def test_changing_an_evaluation_option_reruns_only_the_evaluation(workdir):
    cfg = write_config(workdir / "knn.yaml", {"scrna": {"evaluate": {"knn_k": 7}}})
    jobs = planned_jobs(snakemake(workdir, "-n", TARGET, configs=[workdir / "tiny.yaml", cfg]))
    assert set(jobs) == {"scrna_baselines", "scrna_evaluate", "scrna_eval", "scrna_plot", "scrna_all"}


def test_a_tokenize_step_killed_after_an_edit_still_reruns_what_is_below_it(workdir):
    # a new split seed: tokens, baselines, models, evaluations and tables rerun, the ingest does not. A
    # scrna_tokenize job killed after the edit leaves its tokens missing (Snakemake removed them when it
    # started) and, here, no record of them; the steps below hold the data settings as params, so the
    # same chain is planned again
    cfg = write_config(workdir / "split.yaml", {"scrna": {"split": {"seed": 11}}})
    configs = [workdir / "tiny.yaml", cfg]
    below = planned_jobs(snakemake(workdir, "-n", TARGET, configs=configs))
    assert set(below) == RULES - {"scrna_fetch_scanpy", "scrna_ingest"} and below["scrna_train"] == 4
    with killed_outputs(workdir, ["results/scrna/brain10k/tokens/clip100"], configs=[workdir / "tiny.yaml"]):
        assert planned_jobs(snakemake(workdir, "-n", TARGET, configs=configs)) == below


def test_lognormalized_input_fails_clearly_and_leaves_no_counts(tmp_path):
    rng = np.random.default_rng(0)
    values = np.log1p(rng.poisson(2.0, size=(20, 8)) * 13.7)
    pd.DataFrame(values, index=[f"c{i}" for i in range(20)], columns=[f"g{j}" for j in range(8)]).to_csv(
        tmp_path / "lognorm.csv")
    cfg = write_config(tmp_path / "bad.yaml", {"scrna": {"datasets": {"mine": {
        "source": "file", "path": str(tmp_path / "lognorm.csv")}}}})
    res = snakemake(tmp_path, "results/scrna/mine/counts.h5ad", configs=[cfg], check=False)
    assert res.returncode != 0
    log = (tmp_path / "logs/scrna/ingest_mine.log").read_text()
    assert str(tmp_path / "lognorm.csv") in log and "record cell 'c0'" in log and "non-integer value" in log
    assert not (tmp_path / "results/scrna/mine/counts.h5ad").exists()
