"""Figures of the imputation evaluation."""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")  # headless: rules run on clusters without a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from omicslm.errors import InputError  # noqa: E402
from omicslm.impute.evaluate import ALL, MONOMORPHIC  # noqa: E402
from omicslm.io.atomic import atomic_path  # noqa: E402

#: Horizontal spread of the methods within one bin, so error bars do not overlap.
_DODGE = 0.25
_FIG_SIZE = (10.0, 4.5)
_DPI = 150


def plot_r2_by_maf(table_tsv: str | os.PathLike, out_png: str | os.PathLike) -> None:
    """Aggregate r² per MAF bin, one line per method, with 95% bootstrap intervals.

    Parameters
    ----------
    table_tsv : path
        Combined score table (:func:`omicslm.impute.evaluate.combine_tables`): columns
        ``method, bin, r2, r2_lo, r2_hi``. The x axis shows the MAF bins in table order;
        the "all" and "monomorphic" rows are left out of the axis, and the "all" r² is
        shown in each method's legend label.
    out_png : path
        PNG written atomically.
    """
    table = pd.read_csv(table_tsv, sep="\t")
    missing = {"method", "bin", "r2", "r2_lo", "r2_hi"} - set(table.columns)
    if missing:
        raise InputError(table_tsv, f"missing column(s) {sorted(missing)}")
    per_bin = table.loc[~table["bin"].isin([ALL, MONOMORPHIC])]
    bins = list(dict.fromkeys(per_bin["bin"]))  # first-seen order = increasing MAF
    if not bins:
        raise InputError(table_tsv, "no MAF-bin rows to plot")
    methods = list(dict.fromkeys(table["method"]))
    offsets = np.linspace(-_DODGE / 2, _DODGE / 2, len(methods)) if len(methods) > 1 else [0.0]

    fig, ax = plt.subplots(figsize=_FIG_SIZE)
    for method, dx in zip(methods, offsets):
        rows = per_bin.loc[per_bin["method"] == method].set_index("bin").reindex(bins)
        r2 = rows["r2"].to_numpy(dtype=float)
        # Error bars are distances from the point; a missing interval draws none.
        yerr = np.vstack([r2 - rows["r2_lo"].to_numpy(dtype=float), rows["r2_hi"].to_numpy(dtype=float) - r2])
        yerr = np.clip(np.nan_to_num(yerr, nan=0.0), 0.0, None)
        all_r2 = table.loc[(table["method"] == method) & (table["bin"] == ALL), "r2"]
        label = f"{method} (all r² = {all_r2.iloc[0]:.3f})" if len(all_r2) else method
        ax.errorbar(np.arange(len(bins)) + dx, r2, yerr=yerr, marker="o", capsize=3, label=label)
    ax.set_xticks(np.arange(len(bins)), bins)
    ax.set_xlabel("minor-allele frequency in the reference panel")
    ax.set_ylabel("aggregate r² (dosage vs truth)")
    ax.set_ylim(0.0, 1.05)
    ax.set_title("Imputation accuracy by MAF bin (95% site-bootstrap intervals)")
    ax.grid(axis="y", alpha=0.3)
    # outside the axes: with several methods no corner of the plot is reliably free
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    fig.tight_layout()
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, format="png", dpi=_DPI)
    plt.close(fig)
