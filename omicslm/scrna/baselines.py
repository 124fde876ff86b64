"""Baselines of masked-count prediction, scored on exactly the masked positions the model is scored on.

* ``random`` — uniform over the bins: NLL log(n_bins), accuracy 1 / n_bins (the seed's 4.605).
* ``per_gene_marginal`` — each gene's own bin distribution among the training cells' tokens
  (smoothed towards the overall bin distribution with weight ``alpha``): what a model learns
  from gene identity alone, without looking at the rest of the cell. A model must beat this to show it uses the cell's context.
* ``per_cell_mean`` — the distribution of the cell's own visible (unmasked) bins, smoothed the
  same way; its mean is (near) the cell's mean bin: what the cell's depth / overall level alone predicts.

``alpha`` is picked per method from a grid on the validation cells (:func:`pick_alpha`), never on
the test cells. Metrics per method (:func:`summarize`): mean NLL (nats), accuracy of the most likely bin, and
Spearman correlation of the expected bin with the true bin and with the true log-normalized
expression, over all masked positions pooled.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import spearmanr

from omicslm.scrna.tokenize import PAD, Tokenized
from omicslm.scrna.train import eval_mask


def gene_bin_counts(data: Tokenized, rows: np.ndarray) -> np.ndarray:
    """Count of each (gene id, bin) among all views' non-padding tokens of ``rows``.

    Returns int64 (vocab_size, n_bins).
    """
    genes = np.asarray(data.genes[rows]).ravel()
    bins = np.asarray(data.bins[rows]).ravel()
    keep = genes != PAD
    n_bins = data.meta["n_bins"]
    flat = np.bincount(genes[keep].astype(np.int64) * n_bins + bins[keep], minlength=data.meta["vocab_size"] * n_bins)
    return flat.reshape(data.meta["vocab_size"], n_bins)


def _scores(log_probs: np.ndarray, targets: np.ndarray) -> dict[str, np.ndarray]:
    bins = np.arange(log_probs.shape[1], dtype=np.float64)
    return {"nll": -log_probs[np.arange(len(targets)), targets], "pred": log_probs.argmax(1),
            "expected": np.exp(log_probs) @ bins}


def _smoothed_log(counts: np.ndarray, prior: np.ndarray, alpha: float) -> np.ndarray:
    """log of (counts + alpha * prior) / (n + alpha) per row: a Dirichlet prior centred on ``prior``.

    Centring on the global bin distribution rather than on uniform keeps a rarely seen gene's
    expected bin near the typical one instead of pulling it to the middle of the bin range.
    """
    counts = counts.astype(np.float64) + alpha * prior
    return np.log(counts / counts.sum(axis=-1, keepdims=True))


def baseline_predictions(data: Tokenized, rows: np.ndarray, train_rows: np.ndarray, *, mask_fraction: float,
                         seed: int, alpha) -> dict[str, dict[str, np.ndarray]]:
    """Per-position scores of each baseline at the fixed masked positions of view 0 of ``rows``.

    ``alpha``: one smoothing weight, or a dict with one for ``per_gene_marginal`` and ``per_cell_mean``.

    Returns
    -------
    dict
        method -> {``nll``, ``pred``, ``expected``, ``targets``, ``expr``} arrays of shape (n_masked,).
    """
    n_bins = data.meta["n_bins"]
    mask = eval_mask(data, rows, fraction=mask_fraction, seed=seed)
    genes = np.asarray(data.genes[rows, 0])
    bins = np.asarray(data.bins[rows, 0]).astype(np.int64)
    targets, gene_ids = bins[mask], genes[mask]
    expr = np.asarray(data.expr[rows, 0])[mask]
    gene_counts = gene_bin_counts(data, train_rows)
    total = gene_counts.sum(0).astype(np.float64) + 1.0  # +1: no bin has probability 0
    prior = total / total.sum()
    alphas = alpha if isinstance(alpha, dict) else {"per_gene_marginal": alpha, "per_cell_mean": alpha}
    marginal = _smoothed_log(gene_counts, prior, alphas["per_gene_marginal"])
    visible = (genes != PAD) & ~mask
    cell_counts = np.zeros((len(rows), n_bins), dtype=np.int64)
    np.add.at(cell_counts, (np.nonzero(visible)[0], bins[visible]), 1)
    per_cell = _smoothed_log(cell_counts, prior, alphas["per_cell_mean"])[np.nonzero(mask)[0]]
    out = {"per_gene_marginal": _scores(marginal[gene_ids], targets),
           "per_cell_mean": _scores(per_cell, targets)}
    out["random"] = {"nll": np.full(len(targets), math.log(n_bins)), "pred": None, "expected": None}
    for v in out.values():
        v.update(targets=targets, expr=expr)
    return out


def pick_alpha(data: Tokenized, val_rows: np.ndarray, train_rows: np.ndarray, *, mask_fraction: float, seed: int,
               alphas) -> dict[str, float]:
    """The smoothing weight of each smoothed baseline with the lowest validation NLL."""
    nll = {a: baseline_predictions(data, val_rows, train_rows, mask_fraction=mask_fraction, seed=seed, alpha=a)
           for a in alphas}
    return {m: min(alphas, key=lambda a: float(np.mean(nll[a][m]["nll"]))) for m in ("per_gene_marginal", "per_cell_mean")}


def _spearman(a, b) -> float:
    if a is None or len(a) < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(spearmanr(a, b).statistic)


def summarize(scores: dict, n_bins: int) -> dict[str, float]:
    """Mean NLL, accuracy and Spearman correlations of one method's per-position scores."""
    n = len(scores["targets"])
    if scores["pred"] is None:  # random guess: every bin equally likely
        acc = 1.0 / n_bins
    else:
        acc = float((scores["pred"] == scores["targets"]).mean()) if n else float("nan")
    return {"masked_tokens": int(n), "masked_loss": float(np.mean(scores["nll"])) if n else float("nan"),
            "masked_accuracy": acc, "spearman": _spearman(scores["expected"], scores["targets"]),
            "spearman_expr": _spearman(scores["expected"], scores["expr"])}
