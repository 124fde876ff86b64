import math

import numpy as np
import pandas as pd
import pytest

from omicslm.scrna.baselines import baseline_predictions, gene_bin_counts, summarize
from omicslm.scrna.evaluate import combine_eval, evaluate_baselines, evaluate_model, label_metrics
from omicslm.scrna.plot import plot_loss_curves
from omicslm.scrna.tokenize import load_tokenized
from omicslm.scrna.train import train_model

EVAL = {"mask_fraction": 0.2, "seed": 1}


def test_baselines_are_scored_at_the_same_positions_and_beat_random(tokens):
    data = load_tokenized(tokens)
    test, train = data.rows("test"), data.rows("train")
    preds = baseline_predictions(data, test, train, alpha=1.0, **EVAL)
    n = {m: len(p["targets"]) for m, p in preds.items()}
    assert len(set(n.values())) == 1 and n["random"] > 0
    scores = {m: summarize(p, 10) for m, p in preds.items()}
    assert scores["random"]["masked_loss"] == pytest.approx(math.log(10))
    assert scores["per_gene_marginal"]["masked_loss"] < scores["random"]["masked_loss"]
    assert scores["per_gene_marginal"]["spearman"] > 0      # marker genes: a gene's typical count ranks its counts
    counts = gene_bin_counts(data, train)
    assert counts.shape == (31, 10) and counts[0].sum() == 0   # padding id 0 never counted
    assert counts.sum() == int((np.asarray(data.genes[train]) != 0).sum())


def test_label_metrics_on_separable_and_random_embeddings():
    rng = np.random.default_rng(0)
    labels = np.repeat(["a", "b", "c"], 20)
    centers = {"a": (0, 0), "b": (10, 0), "c": (0, 10)}
    emb = np.array([centers[x] for x in labels]) + rng.normal(0, 0.5, (60, 2))
    good = label_metrics(emb[::2], labels[::2], emb[1::2], labels[1::2], knn_k=5, seed=0, n_init=5)
    assert good == {"knn_accuracy": 1.0, "ari": 1.0}
    noise = rng.normal(size=(60, 2))
    bad = label_metrics(noise[::2], labels[::2], noise[1::2], labels[1::2], knn_k=5, seed=0, n_init=5)
    assert bad["ari"] < 0.3
    unlabelled = label_metrics(emb, [None] * 60, emb, [None] * 60, knn_k=5, seed=0, n_init=5)
    assert all(math.isnan(v) for v in unlabelled.values())


def test_model_and_baseline_rows_combine_into_one_table(tokens, ingested, tmp_path):
    train_model(tokens, tmp_path / "m", work_dir=tmp_path / "w", name="tiny",
                model={"d_model": 16, "heads": 2, "ffn": 32, "layers": 1, "dropout": 0.0, "norm_first": True,
                       "proj_dim": 8},
                loss={"head": "ordinal", "mask_fraction": 0.2, "clip_weight": 0.1, "clip_temperature": 0.1},
                train={"max_epochs": 2, "lr": 3e-3, "warmup_steps": 1, "device": "cpu"}, batch_size=4,
                steps_per_epoch=4, max_val_cells=None, eval_mask_fraction=0.2, eval_seed=1)
    model = evaluate_model(tokens, tmp_path / "m" / "best", tmp_path / "eval.tsv", dataset="toy", name="tiny",
                           binning="clip10", batch_size=8, knn_k=5, kmeans_n_init=2, device="cpu", **EVAL)
    base = evaluate_baselines({"clip10": tokens}, ingested, tmp_path / "base.tsv", dataset="toy", alphas=[1.0, 10.0],
                              max_val_cells=None, knn_k=5, pca_components=5, kmeans_n_init=2,
                              scvi={"enabled": True, "n_latent": 4, "max_epochs": 20}, **EVAL)
    row = model.iloc[0]
    assert row["head"] == "ordinal" and row["masked_tokens"] > 0 and row["masked_loss"] < math.log(10)
    assert 0 <= row["knn_accuracy"] <= 1 and not math.isnan(row["ari"])
    test_base = base[(base["split"] == "test") & (base["kind"] == "baseline")]
    assert set(test_base["masked_tokens"]) == {row["masked_tokens"]}        # same positions as the model
    pca = base[base["method"] == "pca_lognorm"].iloc[0]
    assert pca["knn_accuracy"] > 0.9                                        # the two toy cell types separate
    hvg = base[base["method"] == "scanpy_hvg_pca"].iloc[0]                  # scanpy's own recipe, the same cells
    assert hvg["knn_accuracy"] > 0.9 and hvg["cells"] == pca["cells"]
    scvi = base[base["method"] == "scvi"].iloc[0]                           # scvi-tools' SCVI, the same cells
    assert scvi["knn_accuracy"] > 0.9 and scvi["cells"] == pca["cells"] and scvi["kind"] == "embedding_baseline"
    table = combine_eval([tmp_path / "eval.tsv", tmp_path / "base.tsv"], tmp_path / "all.tsv")
    assert list(table["method"]) == ["per_cell_mean", "per_gene_marginal", "random", "tiny", "pca_lognorm",
                                     "scanpy_hvg_pca", "scvi"]
    assert set(table["split"]) == {"test"}
    assert pd.read_csv(tmp_path / "all.tsv", sep="\t").shape == table.shape
    plot_loss_curves([tmp_path / "m" / "history.tsv"], ["toy/tiny/clip10"], [tmp_path / "base.tsv"], ["toy"],
                     tmp_path / "curves.png")
    assert (tmp_path / "curves.png").read_bytes()[:4] == b"\x89PNG"
