"""Training and validation curves of the imputation model variants."""

from __future__ import annotations

import os
from typing import Mapping

import matplotlib

matplotlib.use("Agg")  # headless: rules run on clusters without a display
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
import pandas as pd  # noqa: E402

from omicslm.errors import InputError  # noqa: E402
from omicslm.io.atomic import atomic_path  # noqa: E402

_FIG_SIZE = (11.0, 4.0)
_DPI = 150


def plot_training_curves(histories: Mapping[str, str | os.PathLike], out_png: str | os.PathLike, *,
                         metric: str) -> None:
    """Three panels per figure: train loss, validation loss, and the early-stopping metric.

    Parameters
    ----------
    histories : mapping variant -> path
        ``history.tsv`` of :func:`omicslm.train.loop.fit` (columns ``epoch``,
        ``train_loss``, ``val_loss``, ``metric``...), one line per variant.
    out_png : path
        PNG written atomically.
    metric : str
        The early-stopping metric (e.g. ``val_r2_all``); its best epoch is marked.
    """
    if not histories:
        raise ValueError("no training histories to plot")
    panels = ["train_loss", "val_loss", metric]
    fig, axes = plt.subplots(1, len(panels), figsize=_FIG_SIZE)
    for variant, path in histories.items():
        df = pd.read_csv(path, sep="\t")
        missing = [c for c in ["epoch", *panels] if c not in df.columns]
        if missing:
            raise InputError(path, f"training history lacks column(s) {missing}; has {list(df.columns)}")
        epoch = df["epoch"] + 1  # the loop logs 0-based epochs; people count from 1
        for ax, col in zip(axes, panels):
            (line,) = ax.plot(epoch, df[col], marker="o", label=variant)
            if col == metric:
                best = df[col].idxmax() if metric.startswith("val_r2") or "f1" in metric else df[col].idxmin()
                ax.scatter([epoch[best]], [df[col][best]], s=120, facecolors="none", edgecolors=line.get_color())
    for ax, col in zip(axes, panels):
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(col)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize="small")
    fig.tight_layout()
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, dpi=_DPI, format="png")
    plt.close(fig)
