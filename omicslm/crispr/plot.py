"""Predicted-vs-measured scatter of every method on the held-out test split."""

from __future__ import annotations

import math
import os

import pandas as pd

from omicslm.crispr.evaluate import regression_metrics
from omicslm.io.atomic import atomic_path


def plot_scatter(predictions: list, methods: list[str], out: str | os.PathLike, *, role: str = "test",
                 columns: int = 3) -> None:
    """One panel per method: measured (x) vs predicted (y) efficiency, 0–100, with Spearman / RMSE in the title."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(methods)
    cols = min(columns, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 3.4 * rows), squeeze=False)
    for ax, path, method in zip(axes.flat, predictions, methods):
        df = pd.read_csv(path, sep="\t")
        df = df[df.role == role]
        m = regression_metrics(df.measured, df.predicted)
        ax.scatter(df.measured, df.predicted, s=4, alpha=0.4, linewidths=0)
        ax.plot([0, 100], [0, 100], color="grey", lw=0.8, ls="--")
        ax.set(xlim=(0, 100), ylim=(0, 100), xlabel="measured efficiency", ylabel="predicted efficiency",
               title=f"{method}\nSpearman {m['spearman']:.3f}  RMSE {m['rmse']:.1f}")
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
