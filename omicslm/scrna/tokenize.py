"""Tokenize cells: gene vocabulary, count bins, up to ``seq_len`` genes per view, two views per cell.

A tokenized data set is a folder of memory-mapped arrays (the contract between tokenizing and
training, like nanoGPT's ``train.bin``)::

    vocab.tsv     one gene name per line; gene id = line number + N_SPECIAL (0 is padding)
    genes.npy     int32   (n_cells, n_views, seq_len)  gene ids, 0 = padding
    bins.npy      int16   (n_cells, n_views, seq_len)  count bins, -1 = padding
    expr.npy      float32 (n_cells, n_views, seq_len)  log1p(count / total * 1e4), 0 at padding
    cells.tsv     cell, split (train / validation / test), label, n_expressed
    meta.json     binning, n_bins, seq_len, n_views, vocab size, counts of skipped genes and cells

Each view takes the cell's expressed genes first (a random ``seq_len`` of them when there are
more), then fills up to ``max_zero_fraction * seq_len`` positions with randomly drawn
unexpressed genes (bin 0). The model has no positional embedding: a position must not reveal
whether a gene was drawn as expressed or as a zero. The views of a cell are independent draws
(the contrastive pair). The cell split is seeded and written here, so every binning of a data set
holds out the same cells.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp
from tqdm import tqdm

from omicslm.errors import InputError
from omicslm.io.atomic import atomic_dir, atomic_open
from omicslm.scrna.binning import bin_cell, lognorm, n_bins

log = logging.getLogger(__name__)

PAD = 0              # gene id of padding
N_SPECIAL = 1        # gene ids below this are special tokens
PAD_BIN = -1         # bin stored at padding positions
EXPR_TARGET_SUM = 1e4  # the conventional scale of log-normalized expression (Spearman target, PCA peer)
SPLITS = ("train", "validation", "test")
UNKNOWN_POLICIES = ("skip", "error")


class Vocab:
    """Gene names <-> token ids (id = index + :data:`N_SPECIAL`)."""

    def __init__(self, genes):
        self.genes = [str(g) for g in genes]
        self.index = {g: i + N_SPECIAL for i, g in enumerate(self.genes)}
        if len(self.index) != len(self.genes):
            dup = pd.Series(self.genes).value_counts()
            raise ValueError(f"duplicate gene names in the vocabulary: {', '.join(dup[dup > 1].index[:5])}")

    def __len__(self) -> int:
        """Number of token ids, specials included (the embedding size)."""
        return len(self.genes) + N_SPECIAL

    def write(self, path: str | os.PathLike) -> None:
        with atomic_open(path) as fh:
            fh.writelines(g + "\n" for g in self.genes)

    @classmethod
    def read(cls, path: str | os.PathLike) -> "Vocab":
        path = Path(path)
        try:
            genes = [line.rstrip("\n") for line in path.read_text().splitlines()]
        except FileNotFoundError:
            raise InputError(path, "vocabulary file does not exist") from None
        try:
            return cls(genes)
        except ValueError as exc:
            raise InputError(path, str(exc)) from None

    def encode(self, genes, *, path, on_unknown: str = "skip") -> tuple[np.ndarray, list[str]]:
        """Token ids of ``genes`` (0 where a gene is not in the vocabulary) and the unknown names.

        ``on_unknown="error"`` raises InputError naming the first unknown genes of ``path``.
        """
        if on_unknown not in UNKNOWN_POLICIES:
            raise ValueError(f"on_unknown_gene must be one of {UNKNOWN_POLICIES}, got {on_unknown!r}")
        ids = np.array([self.index.get(str(g), PAD) for g in genes], dtype=np.int32)
        unknown = [str(g) for g, i in zip(genes, ids) if i == PAD]
        if unknown and on_unknown == "error":
            raise InputError(path, f"{len(unknown)} of {len(ids)} genes are not in the saved vocabulary "
                                   f"(first: {', '.join(unknown[:5])}); set on_unknown_gene: skip to drop them")
        return ids, unknown


def split_cells(n_cells: int, *, validation_fraction: float, test_fraction: float, seed: int) -> np.ndarray:
    """Seeded random split; returns an object array of "train" / "validation" / "test", shape (n_cells,)."""
    n_test = int(round(test_fraction * n_cells))
    n_val = int(round(validation_fraction * n_cells))
    if n_cells - n_test - n_val < 1:
        raise ValueError(f"{n_cells} cells leave no training cell with test {n_test} and validation {n_val}")
    perm = np.random.default_rng(seed).permutation(n_cells)
    out = np.full(n_cells, "train", dtype=object)
    out[perm[:n_test]] = "test"
    out[perm[n_test:n_test + n_val]] = "validation"
    return out


def select_genes(expressed: np.ndarray, n_genes: int, *, seq_len: int, max_zero_fraction: float,
                 rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """Columns of one view: expressed genes first, then sampled unexpressed ones.

    Parameters
    ----------
    expressed : ndarray, int, shape (n_expressed,)
        Column indices of the cell's expressed genes.
    n_genes : int
        Number of columns (genes) to draw zeros from.

    Returns
    -------
    columns : ndarray, int64, shape (<= seq_len,)
    n_nonzero : int
        How many leading entries of ``columns`` are expressed genes.
    """
    expressed = np.asarray(expressed, dtype=np.int64)
    if len(expressed) >= seq_len:
        return rng.choice(expressed, size=seq_len, replace=False), seq_len
    picked = rng.permutation(expressed)
    n_zero = min(seq_len - len(expressed), int(max_zero_fraction * seq_len), n_genes - len(expressed))
    if n_zero <= 0:
        return picked, len(picked)
    zeros = np.setdiff1d(np.arange(n_genes), expressed, assume_unique=True)
    return np.concatenate([picked, rng.choice(zeros, size=n_zero, replace=False)]), len(picked)


@dataclass
class Tokenized:
    """The arrays of a tokenized data set (see the module docstring for shapes)."""

    genes: np.ndarray
    bins: np.ndarray
    expr: np.ndarray
    cells: pd.DataFrame
    meta: dict
    vocab: Vocab

    def rows(self, split: str) -> np.ndarray:
        """Row indices of the cells in ``split``."""
        return np.flatnonzero(self.cells["split"].to_numpy() == split)


def tokenize(counts_h5ad, out_dir, *, binning: dict, seq_len: int, views: int, max_zero_fraction: float,
             split: dict, seed: int, vocab: str | os.PathLike | None = None, on_unknown_gene: str = "skip",
             hvg_genes: int | None = None) -> dict:
    """Tokenize an ingested ``counts.h5ad`` into ``out_dir`` (layout in the module docstring).

    Parameters
    ----------
    binning : dict
        ``{"method": "clip", "clip_max": 99}`` or ``{"method": "quantile", "n_bins": 51, "target_sum": 1e4}``.
    split : dict
        ``validation_fraction``, ``test_fraction``, ``seed``.
    vocab : path, optional
        A saved ``vocab.tsv`` to encode with (e.g. a trained model's); default: the genes of the input.
    on_unknown_gene : str
        With ``vocab``: ``skip`` (drop and count genes it lacks) or ``error``. Cells left with no
        known expressed gene are dropped and counted.
    hvg_genes : int, optional
        Without ``vocab``: the vocabulary is the input's ``hvg_genes`` most highly variable genes
        (:func:`hvg_vocabulary`) instead of all its genes; the other genes are skipped and counted.

    Returns
    -------
    dict
        ``meta.json``'s content.
    """
    from omicslm.scrna.ingest import read_ingested

    adata = read_ingested(counts_h5ad)
    X: sp.csr_matrix = adata.X
    genes = np.asarray(adata.var_names, dtype=object)
    if vocab is not None:
        voc = Vocab.read(vocab)
    elif hvg_genes is not None and len(genes) > hvg_genes:
        voc = Vocab(hvg_vocabulary(adata, hvg_genes))
    else:
        voc = Vocab(genes)
    ids, unknown = voc.encode(genes, path=counts_h5ad, on_unknown=on_unknown_gene if vocab is not None else "skip")
    known = ids != PAD
    totals = np.asarray(X.sum(axis=1)).ravel().astype(np.float64)
    Xk, ids_k = sp.csr_matrix(X[:, known]), ids[known]
    Xk.sort_indices()  # select_genes' columns are located in a cell's sorted indices
    n_expressed = np.diff(Xk.indptr)
    keep = np.flatnonzero(n_expressed > 0)
    if len(keep) == 0:
        raise InputError(counts_h5ad, "no cell expresses any gene of the vocabulary")
    splits = split_cells(len(keep), validation_fraction=split["validation_fraction"],
                         test_fraction=split["test_fraction"], seed=split["seed"])
    out_dir = Path(out_dir)
    with atomic_dir(out_dir) as stage:
        write_views(stage, Xk, ids_k, totals, keep, binning=binning, seq_len=seq_len, views=views,
                    max_zero_fraction=max_zero_fraction, seed=seed)
        labels = adata.obs["label"].astype(object).to_numpy()[keep] if "label" in adata.obs else None
        cells = pd.DataFrame({"cell": np.asarray(adata.obs_names)[keep], "split": splits,
                              "label": labels if labels is not None else pd.NA,
                              "n_expressed": n_expressed[keep]})
        cells.to_csv(stage / "cells.tsv", sep="\t", index=False, na_rep="NA")
        voc.write(stage / "vocab.tsv")
        meta = {"binning": binning, "n_bins": n_bins(binning), "seq_len": seq_len, "n_views": views,
                "max_zero_fraction": max_zero_fraction, "vocab_size": len(voc), "seed": seed,
                "cells": int(len(keep)), "cells_without_known_genes": int(len(n_expressed) - len(keep)),
                "genes_not_in_vocab": len(unknown), "hvg_genes": hvg_genes if vocab is None else None,
                "has_labels": labels is not None,
                "split_counts": {s: int((splits == s).sum()) for s in SPLITS},
                "mean_expressed_genes": float(n_expressed[keep].mean())}
        (stage / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
    if unknown:
        (log.warning if vocab is not None else log.info)(
            "%d genes of %s are not in the vocabulary and were skipped (first: %s)", len(unknown), counts_h5ad,
            ", ".join(unknown[:5]))
    log.info("tokenized %d cells (%s) x %d views x %d genes; %d cells without known expressed genes skipped",
             meta["cells"], meta["split_counts"], views, seq_len, meta["cells_without_known_genes"])
    return meta


def lognorm_hvg(adata, n_genes: int):
    """scanpy's recipe before PCA, on a copy of ``adata`` (counts): ``normalize_total`` to 1e4, ``log1p``, then the
    ``n_genes`` most highly variable genes of the seurat flavour (all genes when there are at most ``n_genes``).

    Run on all the given cells at once (unsupervised; no label is used), as scanpy's users run it. Returns the
    log-normalized AnnData of those genes, in the input's gene order.
    """
    import scanpy as sc

    ad = adata.copy()
    ad.X = ad.X.astype(np.float32)
    sc.pp.normalize_total(ad, target_sum=EXPR_TARGET_SUM)
    sc.pp.log1p(ad)
    if ad.n_vars > n_genes:
        sc.pp.highly_variable_genes(ad, n_top_genes=int(n_genes), flavor="seurat", subset=True)
    return ad


def hvg_vocabulary(adata, n_genes: int) -> list[str]:
    """The ``n_genes`` most highly variable genes of ``adata`` (counts), in the input's gene order, chosen as the
    ``scanpy_hvg_pca`` peer chooses them (:func:`lognorm_hvg`)."""
    genes = [str(g) for g in lognorm_hvg(adata, n_genes).var_names]
    log.info("vocabulary: the %d most highly variable of %d genes (scanpy, seurat flavour)", len(genes), adata.n_vars)
    return genes


def write_views(folder: Path, Xk: sp.csr_matrix, ids_k: np.ndarray, totals: np.ndarray, keep: np.ndarray, *,
                binning: dict, seq_len: int, views: int, max_zero_fraction: float, seed: int) -> None:
    """Write ``genes.npy``, ``bins.npy`` and ``expr.npy`` (n_cells, n_views, seq_len) into ``folder``.

    Parameters
    ----------
    Xk : scipy.sparse.csr_matrix, shape (n_all_cells, n_known_genes)
        Counts of the genes in the vocabulary, indices sorted within each row.
    ids_k : ndarray, int32, shape (n_known_genes,)
        Token id of each column of ``Xk``.
    totals : ndarray, float64, shape (n_all_cells,)
        Each cell's total count over all its genes (the normalisation of ``expr``).
    keep : ndarray, int, shape (n_cells,)
        Rows of ``Xk`` to tokenize, in output order; view draws are seeded by ``(seed, row)``.
    """
    shape = (len(keep), views, seq_len)
    g_arr = np.lib.format.open_memmap(folder / "genes.npy", mode="w+", dtype=np.int32, shape=shape)
    b_arr = np.lib.format.open_memmap(folder / "bins.npy", mode="w+", dtype=np.int16, shape=shape)
    e_arr = np.lib.format.open_memmap(folder / "expr.npy", mode="w+", dtype=np.float32, shape=shape)
    g_arr[:], b_arr[:], e_arr[:] = PAD, PAD_BIN, 0.0
    for row, i in enumerate(tqdm(keep, desc="tokenize", unit="cell", mininterval=5, leave=False)):
        lo, hi = Xk.indptr[i], Xk.indptr[i + 1]
        cols, counts = Xk.indices[lo:hi], Xk.data[lo:hi]
        cell_bins = bin_cell(counts, totals[i], binning)  # quantiles need all expressed genes at once
        cell_expr = lognorm(counts, totals[i], target_sum=EXPR_TARGET_SUM)
        rng = np.random.default_rng([seed, int(i)])
        for v in range(views):
            pick, n_nz = select_genes(cols, Xk.shape[1], seq_len=seq_len, max_zero_fraction=max_zero_fraction,
                                      rng=rng)
            pos, n = np.searchsorted(cols, pick[:n_nz]), len(pick)
            g_arr[row, v, :n] = ids_k[pick]
            b_arr[row, v, :n_nz] = cell_bins[pos]
            b_arr[row, v, n_nz:n] = 0
            e_arr[row, v, :n_nz] = cell_expr[pos]
    for arr in (g_arr, b_arr, e_arr):
        arr.flush()


def load_tokenized(folder: str | os.PathLike) -> Tokenized:
    """Open a tokenized data set (arrays memory-mapped, read-only)."""
    folder = Path(folder)
    missing = [n for n in ("genes.npy", "bins.npy", "expr.npy", "cells.tsv", "meta.json", "vocab.tsv")
               if not (folder / n).is_file()]
    if missing:
        raise InputError(folder, f"not a tokenized data set: missing {', '.join(missing)}")
    cells = pd.read_csv(folder / "cells.tsv", sep="\t", keep_default_na=False, na_values=["NA"],
                        dtype={"cell": str, "split": str, "label": object})
    return Tokenized(genes=np.load(folder / "genes.npy", mmap_mode="r"), bins=np.load(folder / "bins.npy", mmap_mode="r"),
                     expr=np.load(folder / "expr.npy", mmap_mode="r"), cells=cells,
                     meta=json.loads((folder / "meta.json").read_text()), vocab=Vocab.read(folder / "vocab.tsv"))
