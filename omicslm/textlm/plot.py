"""Loss curves of the text LMs: train and validation loss against optimizer step, one panel per model."""

from __future__ import annotations

import logging
import os

from omicslm.io.atomic import atomic_path

log = logging.getLogger(__name__)


def plot_loss_curves(histories, names, out_png: str | os.PathLike, *, dpi: int = 120) -> None:
    """Plot ``history.tsv`` files (columns step, loss, eval_loss) of each model into one PNG.

    Parameters
    ----------
    histories : list of paths
        Trainer log histories written by :func:`omicslm.textlm.train.write_history`.
    names : list of str
        Model names, same order.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    fig, axes = plt.subplots(1, len(names), figsize=(5 * len(names), 3.6), squeeze=False)
    for ax, path, name in zip(axes[0], histories, names):
        table = pd.read_csv(path, sep="\t")
        for col, label in (("loss", "train"), ("eval_loss", "validation")):
            if col in table:
                rows = table.dropna(subset=[col])
                ax.plot(rows["step"], rows[col], marker="o", markersize=3, label=label)
        ax.set(title=name, xlabel="optimizer step", ylabel="cross-entropy (nats)")
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, dpi=dpi, format="png")
    plt.close(fig)
    log.info("loss curves of %s -> %s", names, out_png)
