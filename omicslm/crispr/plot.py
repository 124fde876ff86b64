"""Predicted-vs-measured scatter of every method on the held-out test split, and on each external set."""

from __future__ import annotations

import math
import os

import pandas as pd

from omicslm.crispr.evaluate import regression_metrics
from omicslm.io.atomic import atomic_path


def plot_scatter(predictions: list, methods: list[str], out: str | os.PathLike, *, role: str = "test",
                 columns: int = 3) -> None:
    """One panel per method: measured (x) vs predicted (y) efficiency, 0–100, with Spearman / RMSE in the title."""
    panels = []
    for path, method in zip(predictions, methods):
        df = pd.read_csv(path, sep="\t")
        df = df[df.role == role]
        panels.append((method, df.measured, df.predicted))
    _panels(panels, out, columns=columns)


def plot_external(predictions: str | os.PathLike, methods: list[str], out: str | os.PathLike, *, title: str,
                  columns: int = 3) -> None:
    """An external set's scatter: one panel per method, over the guides no training guide shares a spacer with."""
    df = pd.read_csv(predictions, sep="\t")
    df = df[~df.in_training.astype(bool)]
    _panels([(f"{m} on {title}", df.measured, df[m]) for m in methods], out, columns=columns)


def _panels(panels: list, out, *, columns: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(panels)
    cols = min(columns, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 3.4 * rows), squeeze=False)
    for ax, (name, measured, predicted) in zip(axes.flat, panels):
        m = regression_metrics(measured, predicted) if len(measured) >= 3 else {"spearman": float("nan"),
                                                                                  "rmse": float("nan")}
        ax.scatter(measured, predicted, s=4, alpha=0.4, linewidths=0)
        ax.plot([0, 100], [0, 100], color="grey", lw=0.8, ls="--")
        ax.set(xlim=(0, 100), ylim=(0, 100), xlabel="measured efficiency", ylabel="predicted efficiency",
               title=f"{name}\nSpearman {m['spearman']:.3f}  RMSE {m['rmse']:.1f}")
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
