"""r² of the imputed targets along each chromosome, in position bins, with the chunks' core boundaries marked.

The sites and the metric are those of the target scoring (:func:`omicslm.impute.targets.evaluate_targets`):
the panel sites not typed in the QC'd targets, whose truth is complete and that share their position with
no other panel record; a bin's r² is the aggregate r² of :func:`omicslm.impute.evaluate.score` (squared
Pearson correlation of dosage and truth pooled over every genotype of the bin's panel-polymorphic sites, in
panel-minor-allele coding), so a bin holding the whole chromosome gives the ``all`` row of the eval table.

Bins are fixed windows of the chromosome's coordinates: bin ``k`` is ``k * bin_bp + 1 .. (k + 1) * bin_bp``
(1-based, inclusive), listed from the first to the last bin holding a scored site; a bin with fewer than
``min_sites`` sites has r² NaN (a gap in the line).

    r2_along(...)       -> tidy table  method chrom bin_start bin_end n_sites r2
    plot_r2_along(...)  -> PNG, one panel per chromosome, one line per method, dashed core edges
    write_r2_along(...) -> both, atomically (rule impute_targets_plot)
"""

from __future__ import annotations

import logging
import os
from typing import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")  # headless: rules run on clusters without a display
import cyvcf2  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from omicslm.errors import InputError  # noqa: E402
from omicslm.impute.chunks import read_chunks  # noqa: E402
from omicslm.impute.evaluate import ALL, write_table, score  # noqa: E402
from omicslm.impute.imputed_vcf import read_imputed  # noqa: E402
from omicslm.impute.targets import DROPPED_ACTIONS, read_panel_sites, read_truth, scored_sites  # noqa: E402
from omicslm.io.atomic import atomic_path  # noqa: E402

log = logging.getLogger(__name__)

#: Columns of the table of :func:`r2_along`.
COLUMNS = ["method", "chrom", "bin_start", "bin_end", "n_sites", "r2"]
#: MAF edges handed to :func:`score` so that its ``all`` row pools every panel-polymorphic site of a bin.
_ONE_BIN = (0.0, 0.5)
_PANEL_WIDTH, _PANEL_HEIGHT = 11.0, 3.0
_DPI = 150


def _check_bin_args(bin_kb: float, min_sites: int) -> int:
    """The bin width in bp; ValueError unless ``bin_kb`` gives >= 1 bp and ``min_sites`` is an integer >= 1."""
    if isinstance(bin_kb, bool) or not isinstance(bin_kb, (int, float, np.integer, np.floating)) or not bin_kb > 0:
        raise ValueError(f"bin_kb must be a positive number, got {bin_kb!r}")
    bin_bp = int(round(float(bin_kb) * 1000))
    if bin_bp < 1:
        raise ValueError(f"bin_kb {bin_kb!r} is below 1 bp")
    if isinstance(min_sites, bool) or not isinstance(min_sites, (int, np.integer)) or min_sites < 1:
        raise ValueError(f"min_sites must be an integer >= 1, got {min_sites!r}")
    return bin_bp


def _typed_positions(qc_tsv) -> set[int]:
    """Positions of the target records that reach the imputation (a QC action other than a dropped one)."""
    qc = pd.read_csv(qc_tsv, sep="\t")
    missing = {"pos", "action"} - set(qc.columns)
    if missing:
        raise InputError(qc_tsv, f"missing column(s) {sorted(missing)} in the target QC table")
    return set(qc.loc[~qc["action"].isin(DROPPED_ACTIONS), "pos"].astype(int))


def _vcf_samples(vcf) -> list[str]:
    reader = cyvcf2.VCF(str(vcf), lazy=True)
    try:
        return list(reader.samples)
    finally:
        reader.close()


def _chrom_bins(method: str, chrom: str, sel: pd.DataFrame, truth: np.ndarray, dosage: np.ndarray, gt: np.ndarray,
                bin_bp: int, min_sites: int) -> list[dict]:
    """Rows of one (method, chromosome): every bin from the first to the last one holding a scored site."""
    k = (sel["pos"].to_numpy(dtype=np.int64) - 1) // bin_bp
    af = sel["af"].to_numpy(dtype=np.float64)
    rows = []
    for b in range(int(k.min()), int(k.max()) + 1):
        in_bin = k == b
        n_sites, r2 = 0, np.nan
        if in_bin.any():
            table = score(truth[in_bin], dosage[in_bin], gt[in_bin], af[in_bin], bins=_ONE_BIN, n_boot=0)
            all_row = table.loc[table["bin"] == ALL].iloc[0]
            n_sites = int(all_row["n_sites"])  # panel-monomorphic sites are not scored (as in the eval table)
            if n_sites >= min_sites:
                r2 = float(all_row["r2"])
        rows.append({"method": method, "chrom": chrom, "bin_start": b * bin_bp + 1, "bin_end": (b + 1) * bin_bp,
                     "n_sites": n_sites, "r2": r2})
    return rows


def r2_along(imputed: Mapping[tuple[str, str], str | os.PathLike], truth: Mapping[str, str | os.PathLike],
             panel: Mapping[str, str | os.PathLike], qc: Mapping[str, str | os.PathLike], *, bin_kb: float,
             min_sites: int, snps_only: bool = False) -> pd.DataFrame:
    """Aggregate r² of each method's imputed dosages in position bins of ``bin_kb`` kb along each chromosome.

    Parameters
    ----------
    imputed : mapping (method, chrom) -> path
        Each method's imputed VCF of a chromosome (FORMAT ``DS``, else ``HDS`` or ``GT``; see
        :func:`omicslm.impute.imputed_vcf.read_imputed`); it must hold every scored site.
    truth, panel, qc : mapping chrom -> path
        The targets' truth VCF, the reference panel VCF (sites, alleles and frequencies) and the target QC
        table (:func:`omicslm.impute.target_qc.qc_targets`, the typed sites) of each chromosome.
    bin_kb : float
        Bin width in kilobases.
    min_sites : int
        Least number of scored (panel-polymorphic) sites of a bin for an r²; fewer gives NaN.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`COLUMNS`, rows by method then chromosome (first-seen order of ``imputed``) then
        position; ``bin_start``/``bin_end`` 1-based inclusive; bins with no site are listed with
        ``n_sites`` 0 so a method's line breaks across them.
    """
    bin_bp = _check_bin_args(bin_kb, min_sites)
    if not imputed:
        raise ValueError("no imputed VCF given")
    chroms = list(dict.fromkeys(c for _, c in imputed))
    absent = [c for c in chroms if c not in truth or c not in panel or c not in qc]
    if absent:
        raise ValueError(f"no truth, panel or QC table given for chromosome(s) {absent}")
    sites, typed, truths = {}, {}, {}
    rows = []
    for (method, chrom), vcf in imputed.items():
        if chrom not in sites:
            sites[chrom], typed[chrom] = read_panel_sites(panel[chrom], chrom, snps_only=snps_only), _typed_positions(qc[chrom])
        samples = _vcf_samples(vcf)
        key = (chrom, tuple(samples))
        if key not in truths:  # the methods of a chromosome share their targets: the truth is read once
            truths[key] = read_truth(truth[chrom], sites[chrom], samples, chrom)
        site_df, (truth_all, complete) = sites[chrom], truths[key]
        scored = scored_sites(site_df, typed[chrom], complete)  # the sites evaluate_targets scores
        if not scored.any():
            raise InputError(truth[chrom], f"no untyped panel site on {chrom} has a complete truth genotype to score")
        sel = site_df[scored]
        dosage, gt = read_imputed(vcf, sel["pos"].to_numpy(), samples, ref=sel["ref"].tolist(),
                                  alt=sel["alt"].tolist(), contig=None)
        chrom_rows = _chrom_bins(method, chrom, sel, truth_all[scored], dosage, gt, bin_bp, min_sites)
        n_r2 = sum(not np.isnan(r["r2"]) for r in chrom_rows)
        log.info("%s %s: %d untyped sites in %d bins of %g kb, %d with >= %d sites (an r2)", method, chrom,
                 int(scored.sum()), len(chrom_rows), bin_kb, n_r2, min_sites)
        rows.extend(chrom_rows)
    table = pd.DataFrame(rows, columns=COLUMNS)
    order = {m: i for i, m in enumerate(dict.fromkeys(m for m, _ in imputed))}
    table["_m"] = table["method"].map(order)
    table["_c"] = table["chrom"].map({c: i for i, c in enumerate(chroms)})
    return table.sort_values(["_m", "_c", "bin_start"], kind="stable").drop(columns=["_m", "_c"]).reset_index(drop=True)


def core_boundaries(chunks_tsv: str | os.PathLike) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Where the chunks' cores of a chromosome begin and end, and the cores of the dropped chunks.

    Returns
    -------
    edges : ndarray, int64
        Sorted 1-based positions: every core's start and the last core's end (cores tile the span).
    dropped : list of (core_start, core_end)
        Cores of the chunks not imputed (``kept`` false): their sites are absent from the gathered VCF.
    """
    chunks = read_chunks(chunks_tsv).sort_values("core_start")
    edges = np.unique(np.append(chunks["core_start"].to_numpy(dtype=np.int64), int(chunks["core_end"].max())))
    dropped = [(int(s), int(e)) for s, e, k in zip(chunks["core_start"], chunks["core_end"], chunks["kept"]) if not k]
    return edges, dropped


def plot_r2_along(table: pd.DataFrame, chunks: Mapping[str, str | os.PathLike], out_png: str | os.PathLike) -> None:
    """Draw :func:`r2_along`'s table: one panel per chromosome, one line per method, dashed core edges.

    ``chunks`` maps a chromosome to its chunk table (:func:`omicslm.impute.chunks.read_chunks`); a
    chromosome without one is drawn without edges. Dropped chunks' cores are shaded. PNG written atomically.
    """
    missing = set(COLUMNS) - set(table.columns)
    if missing:
        raise ValueError(f"r2 table lacks column(s) {sorted(missing)}")
    if table.empty:
        raise ValueError("no bin to plot")
    chroms = list(dict.fromkeys(table["chrom"]))
    methods = list(dict.fromkeys(table["method"]))
    widths = (table["bin_end"] - table["bin_start"] + 1).unique()
    width = f"{widths[0] / 1000:g} kb bins" if len(widths) == 1 else "position bins"
    fig, axes = plt.subplots(len(chroms), 1, figsize=(_PANEL_WIDTH, _PANEL_HEIGHT * len(chroms)), squeeze=False,
                             sharey=True)
    for ax, chrom in zip(axes[:, 0], chroms):
        if chrom in chunks:
            edges, dropped = core_boundaries(chunks[chrom])
            for i, (start, end) in enumerate(dropped):
                ax.axvspan((start - 0.5) / 1e6, (end + 0.5) / 1e6, color="0.85", zorder=0,
                           label="dropped chunk's core" if i == 0 else None)
            for i, edge in enumerate(edges):
                ax.axvline(edge / 1e6, color="0.5", linestyle="--", linewidth=0.8, zorder=1,
                           label="chunk core edge" if i == 0 else None)
        for method in methods:
            rows = table.loc[(table["method"] == method) & (table["chrom"] == chrom)]
            mid = (rows["bin_start"].to_numpy(dtype=float) + rows["bin_end"].to_numpy(dtype=float)) / 2 / 1e6
            ax.plot(mid, rows["r2"].to_numpy(dtype=float), marker=".", markersize=4, linewidth=1.2, label=method,
                    zorder=2)
        ax.set_title(f"{chrom}")
        ax.set_ylabel("aggregate r²")
        ax.set_ylim(0.0, 1.05)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, fontsize="small")
    axes[-1, 0].set_xlabel("position (Mb)")
    fig.suptitle(f"Imputation r² of untyped sites along the chromosome ({width}; dashed: chunk cores)")
    fig.tight_layout()
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, format="png", dpi=_DPI)
    plt.close(fig)


def write_r2_along(imputed: Mapping[tuple[str, str], str | os.PathLike], truth: Mapping[str, str | os.PathLike],
                   panel: Mapping[str, str | os.PathLike], qc: Mapping[str, str | os.PathLike],
                   chunks: Mapping[str, str | os.PathLike], out_tsv: str | os.PathLike, out_png: str | os.PathLike,
                   *, bin_kb: float, min_sites: int, snps_only: bool = False) -> pd.DataFrame:
    """:func:`r2_along` written to ``out_tsv`` and drawn by :func:`plot_r2_along` to ``out_png`` (both atomic)."""
    table = r2_along(imputed, truth, panel, qc, bin_kb=bin_kb, min_sites=min_sites, snps_only=snps_only)
    write_table(table, out_tsv)
    plot_r2_along(table, chunks, out_png)
    return table


def pairs(methods: Sequence[str], chroms: Sequence[str], paths: Sequence[str]) -> dict[tuple[str, str], str]:
    """``{(method, chrom): path}`` of paths listed method by method, chromosome by chromosome (the rule's order)."""
    keys = [(m, c) for m in methods for c in chroms]
    if len(keys) != len(paths):
        raise ValueError(f"{len(paths)} paths for {len(methods)} methods x {len(chroms)} chromosomes")
    return dict(zip(keys, (str(p) for p in paths)))
