"""Embed your own cells with a trained model (rule ``scrna_embed``): an ``.h5ad`` a scanpy user goes on with.

Your counts (ingested and QC'd as every data set is) are tokenized with the model's own vocabulary, binning and
view length (genes the vocabulary lacks are counted and skipped, or an error with ``on_unknown_gene: error``;
cells left with no known expressed gene are dropped and counted), and the model's mean-pooled cell embedding
goes to ``obsm["X_omicslm"]`` beside scanpy's own recipe (``obsm["X_pca"]``: normalize_total, log1p, highly
variable genes, PCA), so ``sc.pp.neighbors(adata, use_rep="X_omicslm")`` works as it does on ``X_pca``.
``uns["omicslm"]`` records the model and what was skipped. A UMAP of each embedding (scanpy's), coloured by the
label where there is one, goes into the report.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from omicslm.errors import InputError
from omicslm.io.atomic import atomic_path, scratch_dir

log = logging.getLogger(__name__)

EMBEDDINGS = ("X_omicslm", "X_pca", "X_scvi")


def embed_cells(counts_h5ad, checkpoint_dir, training_tokens, out_h5ad, *, model_name: str,
                on_unknown_gene: str = "skip", batch_size: int = 64, pca_components: int = 30,
                hvg_genes: int = 2000, seed: int = 0, device: str = "auto", threads: int = 1,
                scvi: dict | None = None):
    """Write ``out_h5ad``: the tokenized cells' counts, labels, ``X_omicslm``, ``X_pca`` and (``scvi`` enabled:
    scvi-tools' SCVI trained on these cells, unsupervised, as its users run it) ``X_scvi``; returns the AnnData."""
    from omicslm.scrna.evaluate import embed_rows, scanpy_embedding, scvi_embeddings
    from omicslm.scrna.ingest import read_ingested, write_counts_h5ad
    from omicslm.scrna.tokenize import load_tokenized, tokenize
    from omicslm.scrna.train import load_model
    from omicslm.train.device import pick_device

    torch.set_num_threads(max(1, int(threads)))
    training_tokens = Path(training_tokens)
    meta = json.loads((training_tokens / "meta.json").read_text())
    dev = pick_device(device)
    model, run_config = load_model(checkpoint_dir, dev)
    if run_config["tokens"]["vocab_size"] != meta["vocab_size"]:
        raise InputError(checkpoint_dir, f"the model's vocabulary ({run_config['tokens']['vocab_size']} ids) is not "
                                         f"that of {training_tokens} ({meta['vocab_size']})")
    with scratch_dir(out_h5ad) as tmp:
        tok = tokenize(counts_h5ad, Path(tmp) / "tokens", binning=meta["binning"], seq_len=meta["seq_len"], views=1,
                       max_zero_fraction=meta["max_zero_fraction"], seed=meta["seed"],
                       split={"validation_fraction": 0.0, "test_fraction": 0.0, "seed": 0},
                       vocab=training_tokens / "vocab.tsv", on_unknown_gene=on_unknown_gene)
        data = load_tokenized(Path(tmp) / "tokens")
        emb = embed_rows(model, data, np.arange(len(data.cells)), batch_size=batch_size, device=dev)
        cells = data.cells["cell"].to_numpy(dtype=str)
    adata = read_ingested(counts_h5ad)
    adata = adata[adata.obs_names.get_indexer(cells)].copy()
    adata.obsm["X_omicslm"] = emb.astype(np.float32)
    adata.obsm["X_pca"] = scanpy_embedding(adata, cells, n_components=pca_components, hvg_genes=hvg_genes,
                                           seed=seed)
    if scvi and scvi.get("enabled", True):
        adata.obsm["X_scvi"], _ = scvi_embeddings(adata, cells, n_latent=int(scvi["n_latent"]),
                                                  max_epochs=int(scvi["max_epochs"]), seed=seed, threads=threads)
    adata.uns["omicslm"] = {"model": model_name, "checkpoint": str(checkpoint_dir),
                            "genes_not_in_vocab": int(tok["genes_not_in_vocab"]),
                            "cells_without_known_genes": int(tok["cells_without_known_genes"]),
                            "seq_len": int(meta["seq_len"])}
    if "label" in adata.obs:
        adata.obs["label"] = pd.Categorical(adata.obs["label"].astype(object).fillna("NA").astype(str))
    write_counts_h5ad(adata, out_h5ad)
    log.info("%s: %d cells embedded by %s (%d dims) -> %s; %d genes not in its vocabulary, %d cells without a known "
             "expressed gene", counts_h5ad, adata.n_obs, model_name, emb.shape[1], out_h5ad,
             tok["genes_not_in_vocab"], tok["cells_without_known_genes"])
    return adata


def plot_umaps(embedded_h5ad, out_png: str | os.PathLike, *, n_neighbors: int = 15, seed: int = 0) -> None:
    """scanpy's UMAP of each embedding of an embedded ``.h5ad`` side by side, coloured by ``label`` if present."""
    import anndata as ad
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import scanpy as sc

    adata = ad.read_h5ad(embedded_h5ad)
    color = "label" if "label" in adata.obs else None
    reps = [rep for rep in EMBEDDINGS if rep in adata.obsm]
    fig, axes = plt.subplots(1, len(reps), figsize=(5 * len(reps), 4.4), squeeze=False)
    for ax, rep in zip(axes.flat, reps):
        view = adata.copy()
        sc.pp.neighbors(view, use_rep=rep, n_neighbors=min(n_neighbors, max(2, view.n_obs - 1)), random_state=seed)
        sc.tl.umap(view, random_state=seed)
        sc.pl.umap(view, color=color, ax=ax, show=False, title=f"{rep} ({view.n_obs} cells)",
                   legend_loc="right margin" if rep == reps[-1] else "none")
    fig.tight_layout()
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
