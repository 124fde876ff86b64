"""Ingest: any count matrix -> checked raw integer counts + QC -> ``counts.h5ad``.

The output AnnData holds ``X`` (CSR, int32, cells x genes) with cell ids as ``obs_names``,
gene names as ``var_names``, an ``obs['label']`` column when the input has cell-type labels,
and ``obs['total_counts']``. Bad input stops with an :class:`~omicslm.errors.InputError` naming
the file, the cell / gene and the problem: an empty matrix, negative or non-integer values
(e.g. log-normalized data given as counts), duplicate gene names (unless ``on_duplicate_genes:
sum``). Cells left with no expressed gene after QC are dropped and counted, never kept.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from omicslm.errors import InputError
from omicslm.io.atomic import atomic_open, atomic_path
from omicslm.scrna.readers import counts_from_lognorm, read_counts

log = logging.getLogger(__name__)

DUPLICATE_POLICIES = ("error", "sum")


def check_counts(X: sp.csr_matrix, cells, genes, path, *, tolerance: float) -> sp.csr_matrix:
    """Return ``X`` as int32 counts, or raise InputError at the first value that is not a count.

    Values within ``tolerance`` of an integer are rounded (float storage, recovered counts).

    Parameters
    ----------
    X : sparse CSR, shape (n_cells, n_genes)
    cells, genes : sequences naming the rows and columns (for the message)
    """
    X = sp.csr_matrix(X)
    data = np.asarray(X.data, dtype=np.float64)

    def where(k: int) -> str:
        row = int(np.searchsorted(X.indptr, k, side="right") - 1)
        return f"cell {str(cells[row])!r}, gene {str(genes[X.indices[k]])!r}"

    bad = np.flatnonzero(~np.isfinite(data))
    if len(bad):
        raise InputError(path, f"value {data[bad[0]]} is not a finite number ({len(bad)} such values)",
                         record=where(bad[0]))
    bad = np.flatnonzero(data < 0)
    if len(bad):
        raise InputError(path, f"negative value {data[bad[0]]:g} ({len(bad)} negative values): counts must be >= 0",
                         record=where(bad[0]))
    rounded = np.rint(data)
    bad = np.flatnonzero(np.abs(data - rounded) > tolerance)
    if len(bad):
        raise InputError(path, f"non-integer value {data[bad[0]]:.6g} ({len(bad)} of {len(data)} stored values): "
                               "counts must be raw integer UMI/read counts, and these look normalized or "
                               "log-transformed; give the raw counts (e.g. matrix: raw or layers/counts)",
                         record=where(bad[0]))
    if len(rounded) and rounded.max() > np.iinfo(np.int32).max:
        raise InputError(path, f"count {rounded.max():.0f} does not fit in int32", record=where(int(rounded.argmax())))
    out = sp.csr_matrix((rounded.astype(np.int32), X.indices, X.indptr), shape=X.shape)
    out.eliminate_zeros()
    return out


def merge_duplicate_genes(X: sp.csr_matrix, genes: np.ndarray, path, *, policy: str):
    """Apply ``on_duplicate_genes``: ``error`` names the duplicates, ``sum`` adds their counts (first order kept)."""
    if policy not in DUPLICATE_POLICIES:
        raise ValueError(f"on_duplicate_genes must be one of {DUPLICATE_POLICIES}, got {policy!r}")
    names, first, inverse = np.unique(genes, return_index=True, return_inverse=True)
    if len(names) == len(genes):
        return X, genes, 0
    dup = pd.Series(genes).value_counts()
    dup = dup[dup > 1]
    if policy == "error":
        shown = ", ".join(f"{g!r} x{n}" for g, n in dup.head(5).items())
        raise InputError(path, f"{len(dup)} duplicate gene name(s): {shown}; use unique names (e.g. gene ids via "
                               "gene_column) or set on_duplicate_genes: sum")
    order = np.argsort(first)  # keep the genes in the order of their first occurrence
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    merge = sp.csr_matrix((np.ones(len(genes), dtype=np.int32), (np.arange(len(genes)), rank[inverse])),
                          shape=(len(genes), len(names)))
    log.info("summed the counts of %d duplicated gene name(s) (%d columns -> %d)", len(dup), len(genes), len(names))
    return sp.csr_matrix(X @ merge), names[order], int(len(genes) - len(names))


def qc_filter(X: sp.csr_matrix, *, min_genes: int, min_cells: int, max_genes: int | None = None):
    """Genes expressed in >= ``min_cells`` cells (the ``max_genes`` most widely expressed), then cells with
    >= max(1, ``min_genes``) expressed genes among them.

    Returns
    -------
    cell_keep, gene_keep : ndarray, bool, shapes (n_cells,), (n_genes,)
    counts : dict
        Cells / genes dropped by each reason.
    """
    expressed = sp.csr_matrix(X > 0)
    cells_per_gene = np.asarray(expressed.sum(axis=0)).ravel()
    gene_keep = cells_per_gene >= min_cells
    counts = {"genes_below_min_cells": int((~gene_keep).sum())}
    if max_genes is not None and gene_keep.sum() > max_genes:
        order = np.lexsort((np.arange(len(gene_keep)), -cells_per_gene))  # most widely expressed, stable
        top = np.zeros_like(gene_keep)
        top[order[:max_genes]] = True
        counts["genes_beyond_max_genes"] = int((gene_keep & ~top).sum())
        gene_keep &= top
    genes_per_cell = np.asarray(expressed[:, gene_keep].sum(axis=1)).ravel()
    counts["cells_without_expressed_genes"] = int((genes_per_cell == 0).sum())
    counts["cells_below_min_genes"] = int(((genes_per_cell > 0) & (genes_per_cell < min_genes)).sum())
    cell_keep = genes_per_cell >= max(1, min_genes)
    return cell_keep, gene_keep, counts


def _objectify(df: pd.DataFrame) -> pd.DataFrame:
    """Store strings as object dtype: anndata 0.12.6 cannot write pandas 3's Arrow-backed strings."""
    df = df.copy()
    df.index = pd.Index(np.asarray(df.index, dtype=object), dtype=object)
    for col in df.columns:
        s = df[col]
        if isinstance(s.dtype, pd.CategoricalDtype):
            cats = pd.Index(np.asarray(s.cat.categories, dtype=object), dtype=object)
            df[col] = pd.Categorical(np.asarray(s.astype(object), dtype=object), categories=cats)
        elif pd.api.types.is_string_dtype(s.dtype):
            df[col] = np.asarray(s, dtype=object)
    return df


def write_counts_h5ad(adata, path: str | os.PathLike) -> None:
    """Write an AnnData atomically (strings as object dtype, see :func:`_objectify`)."""
    adata.obs = _objectify(adata.obs)
    adata.var = _objectify(adata.var)
    with atomic_path(path) as tmp:
        adata.write_h5ad(tmp, compression="gzip")


def ingest(path, out_h5ad, summary_json, *, fmt: str = "auto", matrix: str = "X", gene_column: str | None = None,
           transpose: bool = False, label_column: str | None = None, lognorm: dict | None = None,
           min_genes: int = 1, min_cells: int = 1, max_genes: int | None = None, max_cells: int | None = None,
           on_duplicate_genes: str = "error", integer_tolerance: float = 1e-6, seed: int = 0) -> dict:
    """Read, check and QC a count matrix; write ``out_h5ad`` and a JSON summary of what was dropped.

    Parameters
    ----------
    path : path
        Input file or folder (see :func:`omicslm.scrna.readers.read_counts` for formats).
    lognorm : dict, optional
        ``{"total_column": obs column of original totals, "target_sum": float}``: the matrix
        holds ``log1p(counts / total * target_sum)``, which is inverted before the checks.
    label_column : str, optional
        obs column with cell-type labels, copied to ``obs['label']`` (missing labels stay NA).
    max_cells : int, optional
        Keep a seeded random subset of this many cells (before QC).
    integer_tolerance : float
        Largest distance to an integer still taken as a count.

    Returns
    -------
    dict
        The summary written to ``summary_json``.
    """
    adata = read_counts(path, fmt=fmt, matrix=matrix, gene_column=gene_column, transpose=transpose)
    n_cells, n_genes = adata.shape
    if n_cells == 0 or n_genes == 0 or adata.X.nnz == 0:
        raise InputError(path, f"empty matrix: {n_cells} cells x {n_genes} genes, {adata.X.nnz} non-zero values")
    labels = None
    if label_column is not None:
        if label_column not in adata.obs.columns:
            raise InputError(path, f"no obs column {label_column!r} for labels "
                                   f"(columns: {', '.join(map(str, adata.obs.columns)) or 'none'})")
        labels = adata.obs[label_column].astype(object).to_numpy()
    X = adata.X
    if lognorm:
        col = lognorm["total_column"]
        if col not in adata.obs.columns:
            raise InputError(path, f"lognorm.total_column {col!r} is not an obs column")
        X = counts_from_lognorm(X, adata.obs[col].to_numpy(dtype=np.float64), target_sum=lognorm["target_sum"])
    cells = np.asarray(adata.obs_names, dtype=object)
    dup = pd.Index(cells).duplicated()
    if dup.any():
        names = list(dict.fromkeys(cells[dup]))
        raise InputError(path, f"{int(dup.sum())} duplicate cell barcode(s), e.g. {', '.join(map(str, names[:5]))}: "
                               "each cell needs its own id (several samples? prefix the barcodes by sample)")
    genes = np.asarray(adata.var_names, dtype=object).astype(str)
    X = check_counts(X, cells, genes, path, tolerance=integer_tolerance)
    X, genes, merged = merge_duplicate_genes(X, genes, path, policy=on_duplicate_genes)

    summary = {"input": str(path), "input_cells": n_cells, "input_genes": n_genes, "duplicate_gene_columns_merged": merged}
    if max_cells is not None and n_cells > max_cells:
        pick = np.sort(np.random.default_rng(seed).choice(n_cells, size=max_cells, replace=False))
        X, cells = X[pick], cells[pick]
        labels = labels[pick] if labels is not None else None
        summary["cells_subsampled_away"] = int(n_cells - max_cells)
    cell_keep, gene_keep, dropped = qc_filter(X, min_genes=min_genes, min_cells=min_cells, max_genes=max_genes)
    summary.update(dropped)
    X = sp.csr_matrix(X[cell_keep][:, gene_keep])
    cells, genes = cells[cell_keep], genes[gene_keep]
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise InputError(path, f"no cells or genes left after QC (min_genes {min_genes}, min_cells {min_cells}): "
                               f"{json.dumps(dropped)}")
    obs = pd.DataFrame({"total_counts": np.asarray(X.sum(axis=1)).ravel().astype(np.int64)},
                       index=pd.Index(cells.astype(str), dtype=object))
    if labels is not None:
        obs["label"] = pd.Categorical([None if pd.isna(v) else str(v) for v in labels[cell_keep]])
    import anndata as ad

    out = ad.AnnData(X=X, obs=obs, var=pd.DataFrame(index=pd.Index(genes.astype(str), dtype=object)))
    write_counts_h5ad(out, out_h5ad)
    summary.update(cells=int(X.shape[0]), genes=int(X.shape[1]), nonzero=int(X.nnz),
                   labelled_cells=int(obs["label"].notna().sum()) if labels is not None else 0)
    with atomic_open(summary_json) as fh:
        json.dump(summary, fh, indent=1)
        fh.write("\n")
    log.info("ingested %s: %d cells x %d genes kept (%s)", path, X.shape[0], X.shape[1],
             ", ".join(f"{k} {v}" for k, v in dropped.items() if v))
    return summary


def read_ingested(path: str | os.PathLike):
    """Read a ``counts.h5ad`` written by :func:`ingest` (``X`` CSR int32)."""
    import anndata as ad

    path = Path(path)
    adata = ad.read_h5ad(path)
    adata.X = sp.csr_matrix(adata.X).astype(np.int32)
    return adata
