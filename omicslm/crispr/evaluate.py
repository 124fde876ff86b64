"""Score every method's held-out test predictions, and its predictions of external sets, into ``results/crispr_eval.tsv``."""

from __future__ import annotations

import json
import logging
import os

import numpy as np
import pandas as pd
from scipy.stats import pearsonr, spearmanr

from omicslm.errors import InputError
from omicslm.io.atomic import atomic_open

log = logging.getLogger(__name__)

EVAL_COLUMNS = ["method", "dataset", "n_test", "n_overlap_removed", "rmse", "mse", "mae", "spearman", "pearson",
                "trainable_params", "train_seconds", "encoder"]
#: the ``dataset`` of the rows scored on the held-out test split
HELDOUT = "heldout"


def regression_metrics(measured: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """RMSE, MSE, MAE (efficiency units), Spearman and Pearson of two float arrays of shape (n,)."""
    err = np.asarray(predicted, float) - np.asarray(measured, float)
    mse = float(np.mean(err ** 2))
    return {"rmse": float(np.sqrt(mse)), "mse": mse, "mae": float(np.mean(np.abs(err))),
            "spearman": float(spearmanr(measured, predicted).statistic),
            "pearson": float(pearsonr(measured, predicted).statistic)}


def evaluate_methods(predictions: list, runtimes: list, out: str | os.PathLike, *, role: str = "test",
                     external: dict | None = None) -> pd.DataFrame:
    """One row per method (pairs of ``predictions.tsv`` / ``runtime.json``) and data set, best Spearman first.

    The held-out split's rows come first (``dataset`` :data:`HELDOUT`), then those of each ``external`` set
    (name -> predictions of :func:`omicslm.crispr.external.score_external`), scored on its guides that no
    training guide shares a spacer with (``n_overlap_removed`` counts the others).
    """
    from omicslm.crispr.external import external_rows

    rows, runtime = [], {}
    for pred_path, rt_path in zip(predictions, runtimes):
        with open(rt_path) as fh:
            rt = json.load(fh)
        df = pd.read_csv(pred_path, sep="\t", dtype={"id": str})
        df = df[df.role == role]
        if len(df) < 3:
            raise InputError(pred_path, f"only {len(df)} {role} rows; cannot score")
        runtime[rt["method"]] = {"trainable_params": rt["trainable_params"], "train_seconds": rt["seconds"],
                                 "encoder": rt["encoder"]}
        rows.append({"method": rt["method"], "dataset": HELDOUT, "n_test": len(df), "n_overlap_removed": 0,
                     **regression_metrics(df.measured, df.predicted), **runtime[rt["method"]]})
    for name, path in (external or {}).items():
        rows += [{**r, **runtime[r["method"]]} for r in external_rows(name, path, list(runtime))]
    table = pd.DataFrame(rows, columns=EVAL_COLUMNS)
    order = {d: i for i, d in enumerate([HELDOUT, *(external or {})])}
    table = table.sort_values(["dataset", "spearman"], key=lambda c: c.map(order) if c.name == "dataset" else -c)
    with atomic_open(out) as fh:
        table.to_csv(fh, sep="\t", index=False, float_format="%.4f")
    for r in table.itertuples():
        log.info("%-12s %-16s n %5d RMSE %.2f MAE %.2f Spearman %.3f Pearson %.3f", r.dataset, r.method, r.n_test,
                 r.rmse, r.mae, r.spearman, r.pearson)
    return table
