"""Evaluation on held-out cells -> rows of ``results/scrna_eval.tsv``.

Masked-count prediction: every method (model, :mod:`omicslm.scrna.baselines`) is scored at the
same fixed masked positions of view 0 of the test cells (and of the first ``max_val_cells``
validation cells, for the plots). Cell embeddings, where the data set has labels: kNN label
accuracy (classifier fit on the training cells' embeddings, scored on the test cells) and the
adjusted Rand index of k-means (k = number of test labels) on the test cells, for the model's
mean-pooled embedding and for PCA of log-normalized counts (the usual single-cell peer).
"""

from __future__ import annotations

import logging
import math
import os

import numpy as np
import pandas as pd
import torch

from omicslm.io.atomic import atomic_open
from omicslm.scrna.baselines import baseline_predictions, pick_alpha, summarize
from omicslm.scrna.tokenize import EXPR_TARGET_SUM, Tokenized, lognorm_hvg, load_tokenized
from omicslm.scrna.train import load_model, model_inputs, predict_masked
from omicslm.train import autocast, pick_device

log = logging.getLogger(__name__)

COLUMNS = ["dataset", "method", "kind", "binning", "n_bins", "head", "split", "cells", "masked_tokens", "masked_loss",
           "masked_accuracy", "spearman", "spearman_expr", "knn_accuracy", "ari", "optimizer_steps", "best_epoch"]


def _row(**values) -> dict:
    return {c: values.get(c) for c in COLUMNS}


def _eval_rows(data: Tokenized, split: str, max_cells: int | None) -> np.ndarray:
    return data.rows(split)[:max_cells]


def label_metrics(train_emb: np.ndarray, train_labels, test_emb: np.ndarray, test_labels, *, knn_k: int,
                  seed: int, n_init: int) -> dict[str, float]:
    """kNN accuracy (fit on train, scored on test) and k-means ARI on the test embeddings.

    train_emb : (n_train, dim); test_emb : (n_test, dim); labels: sequences of str (NA = unlabelled).
    """
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_rand_score
    from sklearn.neighbors import KNeighborsClassifier

    tr = pd.notna(np.asarray(train_labels, dtype=object))
    te = pd.notna(np.asarray(test_labels, dtype=object))
    y_tr, y_te = np.asarray(train_labels, dtype=object)[tr].astype(str), np.asarray(test_labels, dtype=object)[te].astype(str)
    if tr.sum() < 2 or te.sum() < 2:
        return {"knn_accuracy": float("nan"), "ari": float("nan")}
    knn = KNeighborsClassifier(n_neighbors=min(knn_k, int(tr.sum()))).fit(train_emb[tr], y_tr)
    acc = float((knn.predict(test_emb[te]) == y_te).mean())
    k = len(np.unique(y_te))
    clusters = KMeans(n_clusters=k, n_init=n_init, random_state=seed).fit_predict(test_emb[te]) if k > 1 else np.zeros(len(y_te))
    return {"knn_accuracy": acc, "ari": float(adjusted_rand_score(y_te, clusters))}


def _counts_and_rows(counts, *cell_lists):
    """The ingested AnnData (``counts``: a ``counts.h5ad`` path, or the AnnData :func:`read_ingested` gave) and the
    row of each named cell, one array per list; an error names the source when a cell is missing."""
    from omicslm.scrna.ingest import read_ingested

    adata = read_ingested(counts) if isinstance(counts, (str, os.PathLike)) else counts
    index = pd.Index(np.asarray(adata.obs_names, dtype=str))
    rows = [index.get_indexer(np.asarray(cells, dtype=str)) for cells in cell_lists]
    if any((r < 0).any() for r in rows):
        source = counts if isinstance(counts, (str, os.PathLike)) else "the count matrix"
        raise ValueError(f"{source}: tokenized cells missing from the count matrix")
    return adata, rows


def pca_embeddings(counts_h5ad, cells_train, cells_test, *, n_components: int, seed: int):
    """PCA (fit on the training cells) of log1p(counts / total * 1e4); returns (train, test) embeddings.

    ``counts_h5ad``, here and in :func:`scanpy_embedding` and :func:`scvi_embeddings`: an ingested ``counts.h5ad``,
    or the AnnData :func:`~omicslm.scrna.ingest.read_ingested` read from it (one read for several peers)."""
    from sklearn.decomposition import PCA

    adata, (tr, te) = _counts_and_rows(counts_h5ad, cells_train, cells_test)
    X = adata.X.astype(np.float64)
    totals = np.asarray(X.sum(axis=1)).ravel()
    X = X.multiply((EXPR_TARGET_SUM / np.maximum(totals, 1.0))[:, None]).tocsr()
    X.data = np.log1p(X.data)
    n = max(1, min(n_components, len(tr) - 1, X.shape[1] - 1))
    pca = PCA(n_components=n, random_state=seed).fit(X[tr].toarray())
    return pca.transform(X[tr].toarray()), pca.transform(X[te].toarray())


def scanpy_embedding(counts_h5ad, cells, *, n_components: int, hvg_genes: int, seed: int) -> np.ndarray:
    """The standard scanpy recipe on ``cells`` (in that order): normalize_total, log1p, HVGs, PCA -> (n, k) float32.

    Run by scanpy itself, as its users run it: on all the given cells at once (unsupervised; no label is
    used), highly variable genes of the seurat flavour (all genes when there are at most ``hvg_genes``).
    """
    import scanpy as sc

    adata, (rows,) = _counts_and_rows(counts_h5ad, cells)
    adata = lognorm_hvg(adata[rows], hvg_genes)
    n = max(1, min(n_components, adata.n_obs - 1, adata.n_vars - 1))
    sc.pp.pca(adata, n_comps=n, random_state=seed)
    return np.asarray(adata.obsm["X_pca"], dtype=np.float32)


def scvi_embeddings(counts_h5ad, cells_train, cells_test=None, *, n_latent: int, max_epochs: int, seed: int,
                    threads: int = 1):
    """scvi-tools' SCVI trained on the training cells' counts; the latent means of the (train, test) cells
    (test None: of the training cells alone, as for embedding one's own cells).

    As scVI's users run it: ``SCVI.setup_anndata`` on the raw counts of the training cells, ``train`` on the
    CPU (``max_epochs``, scvi-tools' own early stopping off, no label used), then
    ``get_latent_representation`` of the held-out cells, whose AnnData scvi-tools registers like the
    training one. float32 arrays (n, n_latent).
    """
    import logging as _logging
    import warnings

    import scvi

    for name in ("scvi", "lightning", "lightning.pytorch", "pytorch_lightning"):
        _logging.getLogger(name).setLevel(_logging.WARNING)
    adata, (tr, te) = _counts_and_rows(counts_h5ad, cells_train, [] if cells_test is None else cells_test)
    scvi.settings.seed = seed
    torch.set_num_threads(max(1, int(threads)))
    train = adata[tr].copy()
    test = adata[te].copy()
    for a in (train, test):
        a.X = a.X.astype(np.float32)
    scvi.model.SCVI.setup_anndata(train)
    model = scvi.model.SCVI(train, n_latent=n_latent)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*srun.*")  # lightning's SLURM hint, not ours to follow
        model.train(max_epochs=max_epochs, accelerator="cpu", devices=1, enable_progress_bar=False,
                    early_stopping=False, logger=False, enable_checkpointing=False)
    z_train = np.asarray(model.get_latent_representation(train), dtype=np.float32)
    if cells_test is None:
        return z_train, None
    return z_train, np.asarray(model.get_latent_representation(test), dtype=np.float32)


@torch.no_grad()
def embed_rows(model, data: Tokenized, rows: np.ndarray, *, batch_size: int, device, amp: bool = True) -> np.ndarray:
    """Mean-pooled embeddings of view 0 of ``rows`` with every count visible; float32 (len(rows), d_model)."""
    out = []
    n_bins = data.meta["n_bins"]
    for start in range(0, len(rows), batch_size):
        sl = rows[start:start + batch_size]
        genes = data.genes[sl, 0]
        batch = model_inputs(genes, data.bins[sl, 0], np.zeros(genes.shape, dtype=bool), n_bins)
        with autocast(device, amp):
            out.append(model.embed(batch["genes"].to(device), batch["values"].to(device)).float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, model.cfg.d_model), dtype=np.float32)


def evaluate_baselines(tokens: dict[str, str], counts_h5ad, out_tsv, *, dataset: str, mask_fraction: float, seed: int,
                       alphas, max_val_cells: int | None, knn_k: int, pca_components: int,
                       kmeans_n_init: int, hvg_genes: int = 2000, scvi: dict | None = None,
                       threads: int = 1) -> pd.DataFrame:
    """Baseline rows of one data set: count baselines per binning and split, embedding peers' rows (test).

    scvi : ``scrna.evaluate.scvi`` ({enabled, n_latent, max_epochs}); None or not enabled: no scVI row.

    tokens : binning name -> tokenized folder (all of one data set, so they share cells and split).
    alphas : smoothing weights to pick from on the validation cells (:func:`omicslm.scrna.baselines.pick_alpha`).
    """
    rows = []
    data = None
    for binning, folder in tokens.items():
        data = load_tokenized(folder)
        n_bins = data.meta["n_bins"]
        val_rows = _eval_rows(data, "validation", max_val_cells)
        alpha = pick_alpha(data, val_rows, data.rows("train"), mask_fraction=mask_fraction, seed=seed, alphas=alphas)
        log.info("%s %s: smoothing weights picked on validation cells: %s", dataset, binning, alpha)
        for split, eval_rows in (("validation", val_rows), ("test", data.rows("test"))):
            preds = baseline_predictions(data, eval_rows, data.rows("train"), mask_fraction=mask_fraction,
                                         seed=seed, alpha=alpha)
            for method, scores in preds.items():
                rows.append(_row(dataset=dataset, method=method, kind="baseline", binning=binning, n_bins=n_bins,
                                 split=split, cells=len(eval_rows), **summarize(scores, n_bins)))
                log.info("%s %s %s %s: masked NLL %.4f", dataset, binning, split, method, rows[-1]["masked_loss"])
    if data is not None and data.meta["has_labels"]:
        from omicslm.scrna.ingest import read_ingested

        counts_h5ad = read_ingested(counts_h5ad)  # read once for the three peers
        cells, train, test = data.cells, data.rows("train"), data.rows("test")
        emb_tr, emb_te = pca_embeddings(counts_h5ad, cells["cell"].to_numpy()[train], cells["cell"].to_numpy()[test],
                                        n_components=pca_components, seed=seed)
        scores = label_metrics(emb_tr, cells["label"].to_numpy()[train], emb_te, cells["label"].to_numpy()[test],
                               knn_k=knn_k, seed=seed, n_init=kmeans_n_init)
        rows.append(_row(dataset=dataset, method="pca_lognorm", kind="embedding_baseline", split="test",
                         cells=len(test), **scores))
        log.info("%s PCA of log-normalized counts: kNN accuracy %.3f, ARI %.3f", dataset, scores["knn_accuracy"],
                 scores["ari"])
        emb = scanpy_embedding(counts_h5ad, cells["cell"].to_numpy(), n_components=pca_components,
                               hvg_genes=hvg_genes, seed=seed)
        scores = label_metrics(emb[train], cells["label"].to_numpy()[train], emb[test],
                               cells["label"].to_numpy()[test], knn_k=knn_k, seed=seed, n_init=kmeans_n_init)
        rows.append(_row(dataset=dataset, method="scanpy_hvg_pca", kind="embedding_baseline", split="test",
                         cells=len(test), **scores))
        log.info("%s scanpy recipe (normalize_total, log1p, %d HVGs, PCA): kNN accuracy %.3f, ARI %.3f", dataset,
                 hvg_genes, scores["knn_accuracy"], scores["ari"])
        if scvi and scvi.get("enabled", True):
            z_tr, z_te = scvi_embeddings(counts_h5ad, cells["cell"].to_numpy()[train], cells["cell"].to_numpy()[test],
                                         n_latent=int(scvi["n_latent"]), max_epochs=int(scvi["max_epochs"]), seed=seed,
                                         threads=threads)
            scores = label_metrics(z_tr, cells["label"].to_numpy()[train], z_te, cells["label"].to_numpy()[test],
                                   knn_k=knn_k, seed=seed, n_init=kmeans_n_init)
            rows.append(_row(dataset=dataset, method="scvi", kind="embedding_baseline", split="test",
                             cells=len(test), **scores))
            log.info("%s scVI (%d latent, %d epochs on the training cells): kNN accuracy %.3f, ARI %.3f", dataset,
                     scvi["n_latent"], scvi["max_epochs"], scores["knn_accuracy"], scores["ari"])
    return _write(rows, out_tsv)


def evaluate_model(tokens_dir, checkpoint_dir, out_tsv, *, dataset: str, name: str, binning: str,
                   mask_fraction: float, seed: int, batch_size: int, knn_k: int, kmeans_n_init: int,
                   train_summary: dict | None = None, device: str = "auto", threads: int = 1) -> pd.DataFrame:
    """The model's test row (masked-count metrics, and embedding metrics where labels exist)."""
    torch.set_num_threads(max(1, int(threads)))
    dev = pick_device(device)
    data = load_tokenized(tokens_dir)
    model, run_config = load_model(checkpoint_dir, dev)
    if run_config["tokens"]["vocab_size"] != data.meta["vocab_size"] or run_config["tokens"]["n_bins"] != data.meta["n_bins"]:
        raise ValueError(f"{checkpoint_dir} was trained on other tokens than {tokens_dir} (vocabulary or bins differ)")
    test = data.rows("test")
    pred = predict_masked(model, data, test, mask_fraction=mask_fraction, seed=seed, batch_size=batch_size, device=dev)
    n_bins = data.meta["n_bins"]
    metrics = summarize(pred, n_bins)
    if data.meta["has_labels"]:
        train = data.rows("train")
        labels = data.cells["label"].to_numpy()
        metrics.update(label_metrics(embed_rows(model, data, train, batch_size=batch_size, device=dev), labels[train],
                                     embed_rows(model, data, test, batch_size=batch_size, device=dev), labels[test],
                                     knn_k=knn_k, seed=seed, n_init=kmeans_n_init))
    summary = train_summary or {}
    row = _row(dataset=dataset, method=name, kind="model", binning=binning, n_bins=n_bins, head=model.cfg.head,
               split="test", cells=len(test), optimizer_steps=summary.get("optimizer_steps"),
               best_epoch=summary.get("best_epoch"), **metrics)
    log.info("%s %s: test masked NLL %.4f (log n_bins %.3f), accuracy %.3f, Spearman %.3f", dataset, name,
             metrics["masked_loss"], math.log(n_bins), metrics["masked_accuracy"], metrics["spearman"])
    return _write([row], out_tsv)


def _write(rows: list[dict], out_tsv) -> pd.DataFrame:
    table = pd.DataFrame(rows, columns=COLUMNS)
    with atomic_open(out_tsv) as fh:
        table.to_csv(fh, sep="\t", index=False, na_rep="NA", float_format="%.6g")
    return table


def combine_eval(tsvs, out_tsv: str | os.PathLike) -> pd.DataFrame:
    """The test rows of every per-data-set / per-model table, baselines first within each data set and binning."""
    table = pd.concat([pd.read_csv(p, sep="\t", keep_default_na=False, na_values=["NA"]) for p in tsvs],
                      ignore_index=True)
    table = table[table["split"] == "test"].copy()
    order = {"baseline": 0, "embedding_baseline": 1, "model": 2}
    table["_k"] = table["kind"].map(order)
    table["_b"] = table["binning"].fillna("~")  # rows of no binning (the PCA peer) last
    table = table.sort_values(["dataset", "_b", "_k", "method"], kind="stable").drop(columns=["_k", "_b"])
    return _write(table.to_dict("records"), out_tsv)
