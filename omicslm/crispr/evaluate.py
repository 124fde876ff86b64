"""Score every method's held-out test predictions into ``results/crispr_eval.tsv``."""

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

EVAL_COLUMNS = ["method", "n_test", "rmse", "mse", "mae", "spearman", "pearson", "trainable_params",
                "train_seconds", "encoder"]


def regression_metrics(measured: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """RMSE, MSE, MAE (efficiency units), Spearman and Pearson of two float arrays of shape (n,)."""
    err = np.asarray(predicted, float) - np.asarray(measured, float)
    mse = float(np.mean(err ** 2))
    return {"rmse": float(np.sqrt(mse)), "mse": mse, "mae": float(np.mean(np.abs(err))),
            "spearman": float(spearmanr(measured, predicted).statistic),
            "pearson": float(pearsonr(measured, predicted).statistic)}


def evaluate_methods(predictions: list, runtimes: list, out: str | os.PathLike, *, role: str = "test"
                     ) -> pd.DataFrame:
    """One row per method (pairs of ``predictions.tsv`` / ``runtime.json``), best Spearman first."""
    rows = []
    for pred_path, rt_path in zip(predictions, runtimes):
        with open(rt_path) as fh:
            rt = json.load(fh)
        df = pd.read_csv(pred_path, sep="\t", dtype={"id": str})
        df = df[df.role == role]
        if len(df) < 3:
            raise InputError(pred_path, f"only {len(df)} {role} rows; cannot score")
        rows.append({"method": rt["method"], "n_test": len(df), **regression_metrics(df.measured, df.predicted),
                     "trainable_params": rt["trainable_params"], "train_seconds": rt["seconds"],
                     "encoder": rt["encoder"]})
    table = pd.DataFrame(rows, columns=EVAL_COLUMNS).sort_values("spearman", ascending=False)
    with atomic_open(out) as fh:
        table.to_csv(fh, sep="\t", index=False, float_format="%.4f")
    for r in table.itertuples():
        log.info("%-16s RMSE %.2f MAE %.2f Spearman %.3f Pearson %.3f", r.method, r.rmse, r.mae, r.spearman,
                 r.pearson)
    return table
