"""Loss curves of the cell transformers against the baselines of the same validation cells and bins."""

from __future__ import annotations

import logging
import os

import pandas as pd

from omicslm.io.atomic import atomic_path

log = logging.getLogger(__name__)

BASELINE_STYLE = {"random": ":", "per_cell_mean": "-.", "per_gene_marginal": "--"}


def plot_loss_curves(histories, runs, baselines, datasets, out_png: str | os.PathLike, *, dpi: int = 120) -> None:
    """One panel per (data set, binning): each model's train and validation masked-count NLL per epoch,
    with the validation NLL of the random, per-cell and per-gene-marginal baselines as horizontal lines.

    Parameters
    ----------
    histories : list of path
        ``history.tsv`` of each run (columns epoch, train_loss, val_loss, ...).
    runs : list of str
        ``"dataset/model/binning"`` of each history, same order.
    baselines : list of path
        ``baselines.tsv`` of each data set in ``datasets``, same order.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    base = pd.concat([pd.read_csv(p, sep="\t").assign(dataset=d) for p, d in zip(baselines, datasets)])
    base = base[(base["split"] == "validation") & (base["kind"] == "baseline")]
    parsed = [tuple(r.split("/")) for r in runs]
    panels = list(dict.fromkeys((d, b) for d, _, b in parsed))
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 3.8), squeeze=False)
    for ax, (dataset, binning) in zip(axes[0], panels):
        shown = []
        for path, (d, model, b) in zip(histories, parsed):
            if (d, b) != (dataset, binning):
                continue
            h = pd.read_csv(path, sep="\t")
            line, = ax.plot(h["epoch"] + 1, h["val_loss"], marker="o", markersize=3, label=f"{model} validation")
            ax.plot(h["epoch"] + 1, h["train_loss"], color=line.get_color(), alpha=0.5, label=f"{model} train (+CLIP)")
            shown += [*h["val_loss"], *h["train_loss"]]
        title = f"{dataset}, {binning}"
        rows = base[(base["dataset"] == dataset) & (base["binning"] == binning)]
        for _, row in rows[rows["method"] != "random"].iterrows():
            ax.axhline(row["masked_loss"], color="grey", linestyle=BASELINE_STYLE.get(row["method"], "-"),
                       label=f"{row['method']} {row['masked_loss']:.3f}")
            shown.append(row["masked_loss"])
        for _, row in rows[rows["method"] == "random"].iterrows():  # log(n_bins) would squash the curves
            title += f" (random guess: {row['masked_loss']:.3f})"
        if shown:
            lo, hi = min(shown), min(max(shown), 2 * max(rows["masked_loss"].min(), min(shown)))
            ax.set_ylim(lo - 0.05 * (hi - lo), hi + 0.05 * (hi - lo))
        ax.set(title=title, xlabel="epoch", ylabel="masked-count NLL (nats)")
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, dpi=dpi, format="png")
    plt.close(fig)
    log.info("loss curves of %d runs in %d panels -> %s", len(runs), len(panels), out_png)
