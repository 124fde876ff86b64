"""Count -> bin (the "expression token") and count -> log-normalized expression.

Two binnings (config ``scrna.binnings``):

* ``clip`` (the seed's): bin = min(count, ``clip_max``); ``clip_max + 1`` bins (vocab 100 for 99).
  Bins are counts, so they are comparable across cells but mix cell size with expression.
* ``quantile`` (scGPT's): per cell, the non-zero values of log1p(count / total * ``target_sum``)
  are cut at that cell's own quantiles into ``n_bins - 1`` bins (1 .. n_bins - 1); zero is bin 0.
  Bins are then per-cell ranks, free of sequencing depth. Unlike scGPT, ties go to the lowest
  bin they reach (the smallest non-zero value is always bin 1) instead of a random one, so the
  target of a masked count is deterministic.
"""

from __future__ import annotations

import numpy as np

METHODS = ("clip", "quantile")


def n_bins(binning: dict) -> int:
    """Number of bins (size of the count vocabulary without special tokens) of a binning config."""
    method = binning["method"]
    if method == "clip":
        return int(binning["clip_max"]) + 1
    if method == "quantile":
        return int(binning["n_bins"])
    raise ValueError(f"unknown binning method {method!r}; expected one of {', '.join(METHODS)}")


def lognorm(counts: np.ndarray, total: float, *, target_sum: float) -> np.ndarray:
    """log1p(counts / total * target_sum), float32, for one cell (``total`` over all its genes)."""
    return np.log1p(np.asarray(counts, dtype=np.float64) * (float(target_sum) / max(float(total), 1.0))
                    ).astype(np.float32)


def quantile_bins(values: np.ndarray, nbins: int) -> np.ndarray:
    """Bins of one cell's values (zero -> 0, non-zero -> 1 .. nbins - 1 by the cell's quantiles).

    Parameters
    ----------
    values : ndarray, float, shape (n_genes,)
        The cell's (log-normalized) expression of the genes to bin; the quantiles come
        from its non-zero entries, so pass all of the cell's expressed genes.

    Returns
    -------
    ndarray, int16, shape (n_genes,)
    """
    if nbins < 2:
        raise ValueError(f"quantile binning needs n_bins >= 2, got {nbins}")
    values = np.asarray(values, dtype=np.float64)
    out = np.zeros(values.shape, dtype=np.int16)
    nz = values > 0
    if nz.any():
        edges = np.quantile(values[nz], np.linspace(0.0, 1.0, nbins))[1:-1]  # the nbins - 2 inner edges
        out[nz] = 1 + np.searchsorted(edges, values[nz], side="left")
    return out


def bin_cell(counts: np.ndarray, total: float, binning: dict) -> np.ndarray:
    """Bins of one cell's counts under ``binning`` (see the module docstring).

    Parameters
    ----------
    counts : ndarray, int, shape (n_genes,)
        Counts of the genes to bin; for ``quantile`` these must include all expressed genes
        of the cell (zeros may be present).
    total : float
        The cell's total count over all genes (``quantile`` normalization).

    Returns
    -------
    ndarray, int16, shape (n_genes,)
    """
    method = binning["method"]
    if method == "clip":
        return np.minimum(np.asarray(counts), int(binning["clip_max"])).astype(np.int16)
    if method == "quantile":
        return quantile_bins(lognorm(counts, total, target_sum=binning["target_sum"]), n_bins(binning))
    raise ValueError(f"unknown binning method {method!r}; expected one of {', '.join(METHODS)}")
