"""Score imputed genotypes against held-out truth, by minor-allele-frequency bin.

The protocol is the one used by the Beagle, minimac and GLIMPSE papers, so numbers are
comparable with the literature and between methods:

* every method is scored on the same sites: all ingested sites that were *not* on the
  genotyping array (array sites were handed to the methods; scoring them flatters all);
* alleles are recoded to the panel-minor allele (sites with panel ALT frequency > 0.5 are
  flipped, as ``GLIMPSE2_concordance`` does), so "non-reference" means "minor";
* sites are binned by their MAF in the *reference panel* (what a method can know), and
  panel-monomorphic sites get their own row instead of polluting the rarest bin;
* the headline metric is the aggregate r² (squared Pearson correlation pooled over all
  genotypes of a bin) with a 95% site-bootstrap interval.

A method that fails to output a scored site or sample is an error, never a silent skip.

Metrics of a row (:func:`score`), with x = dosage and y = truth over the
N = n_sites * n_samples genotypes of the row, in minor-allele coding:

* ``r2`` (aggregate r²) = ``(NΣxy - ΣxΣy)² / ((NΣxx - (Σx)²)(NΣyy - (Σy)²))``,
  pooled over all genotypes of the row; NaN if either variance is 0.
* ``r2_lo``, ``r2_hi``: 2.5 / 97.5 percentiles of r² over ``n_boot`` replicates that
  resample the row's sites with replacement; computed from per-site sums
  ``(n, Σx, Σy, Σxx, Σyy, Σxy)`` so a replicate is a weighted sum, not a re-read.
  Replicates with an undefined r² are ignored.
* ``concordance`` = #(gt == truth) / N.
* ``nonref_concordance`` = #(gt == truth) / #(truth > 0 or gt > 0) (minor coding).
* ``iqs``: mean over sites of Cohen's kappa of the 3x3 table gt x truth
  (Lin et al. 2010): ``(Po - Pc) / (1 - Pc)`` with ``Po`` = observed agreement and
  ``Pc = Σ_k n_k. n_.k / n²``; sites with ``Pc = 1`` (undefined) are left out.
* ``minor_f1`` per allele copy: ``TP = Σ min(gt, truth)``, ``FP = Σ max(gt - truth, 0)``,
  ``FN = Σ max(truth - gt, 0)``, ``F1 = 2TP / (2TP + FP + FN)``.
* ``mean_truth_maf`` = mean over the row's sites of the panel MAF (the bin's
  location on the MAF axis).
"""

from __future__ import annotations

import json
import logging
import os
from typing import Sequence

import numpy as np
import pandas as pd

from omicslm.errors import InputError
from omicslm.impute.imputed_vcf import read_imputed
from omicslm.impute.layout import read_panel
from omicslm.impute.split import PANEL_ROLES, panel_alt_frequency, read_array_sites, read_split, role_indices
from omicslm.io.atomic import atomic_open

log = logging.getLogger(__name__)

#: Label of the row holding the sites that are monomorphic in the reference panel.
MONOMORPHIC = "monomorphic"
#: Label of the row pooling every panel-polymorphic scored site.
ALL = "all"
#: Column order of a score table (``evaluate_method`` prepends ``method`` and appends ``seconds``).
COLUMNS = [
    "bin", "maf_lo", "maf_hi", "n_sites", "n_genotypes", "r2", "r2_lo", "r2_hi",
    "concordance", "nonref_concordance", "iqs", "minor_f1", "mean_truth_maf",
]
#: Bootstrap interval: 2.5th and 97.5th percentiles (a 95% interval).
_CI_PERCENTILES = (2.5, 97.5)
#: Upper bound on (replicates x sites) drawn at once in the bootstrap, to cap memory
#: (each element costs an int64 index and a float64 weight, ~40 MB per block).
_BOOT_BLOCK_ELEMENTS = 2_000_000
#: Significant digits of floats in written tables (r² intervals are resolved to ~1e-3).
_FLOAT_FORMAT = "%.8g"


# --------------------------------------------------------------------------- scoring


def _bin_label(lo: float, hi: float, closed: bool) -> str:
    def fmt(x: float) -> str:
        s = f"{x:.3f}"
        return s if float(s) == x else f"{x:.6g}"  # keep finer edges (e.g. 0.0005) honest

    return f"[{fmt(lo)},{fmt(hi)}{']' if closed else ')'}"


def _pooled_r2(stats: np.ndarray) -> np.ndarray:
    """Aggregate r² from summed sufficient statistics.

    Parameters
    ----------
    stats : ndarray, float64, shape (..., 6)
        Sums over genotypes of ``n, x, y, xx, yy, xy`` (x = dosage, y = truth).

    Returns
    -------
    ndarray, float64, shape (...)
        ``cov² / (var_x var_y)``; NaN where either variance is 0 (or no genotypes).
    """
    n, sx, sy, sxx, syy, sxy = np.moveaxis(stats, -1, 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        cov = n * sxy - sx * sy
        vx = n * sxx - sx * sx
        vy = n * syy - sy * sy
        # Round-off can leave a tiny positive variance for constant data; treat
        # anything at the level of float64 noise as zero.
        tol_x = 1e-12 * np.maximum(n * sxx, 1.0)
        tol_y = 1e-12 * np.maximum(n * syy, 1.0)
        r2 = np.where((vx > tol_x) & (vy > tol_y), cov * cov / (vx * vy), np.nan)
    return np.minimum(r2, 1.0)


def _bootstrap_r2(stats: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """Pooled r² of ``n_boot`` site-bootstrap replicates.

    Parameters
    ----------
    stats : ndarray, float64, shape (n_sites, 6)
        Per-site sufficient statistics (see :func:`_pooled_r2`).

    Returns
    -------
    ndarray, float64, shape (n_boot,)
    """
    out = np.empty(n_boot)
    for start, stop, weights in _bootstrap_weights(len(stats), n_boot, rng):
        out[start:stop] = _pooled_r2(weights @ stats)
    return out


def _bootstrap_weights(n_sites: int, n_boot: int, rng: np.random.Generator):
    """Site-bootstrap replicates in blocks: ``(start, stop, weights)`` with ``weights`` float64 (stop - start, n_sites),
    how often each site is drawn in each replicate; a replicate's sums are then one weighted sum (a matrix product),
    far cheaper than gathering (block, n_sites, 6)."""
    block = max(1, _BOOT_BLOCK_ELEMENTS // max(n_sites, 1))
    for start in range(0, n_boot, block):
        stop = min(n_boot, start + block)
        idx = rng.integers(0, n_sites, size=(stop - start, n_sites))
        offset = np.arange(stop - start, dtype=np.int64)[:, None] * n_sites
        weights = np.bincount((idx + offset).ravel(), minlength=(stop - start) * n_sites)
        yield start, stop, weights.reshape(stop - start, n_sites).astype(np.float64)


def _site_iqs(truth: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Per-site Imputation Quality Score (Cohen's kappa of best guess vs truth).

    Parameters
    ----------
    truth, gt : ndarray, int8, shape (n_sites, n_samples), values 0/1/2

    Returns
    -------
    ndarray, float64, shape (n_sites,)
        NaN where chance agreement is 1 (both calls constant and equal: kappa undefined).
    """
    n_sites, n_samp = truth.shape
    if n_sites == 0:
        return np.empty(0)
    # 3x3 contingency table per site via one bincount: code = site*9 + gt*3 + truth.
    code = (np.arange(n_sites, dtype=np.int64)[:, None] * 9 + gt.astype(np.int64) * 3 + truth)
    table = np.bincount(code.ravel(), minlength=n_sites * 9).reshape(n_sites, 3, 3)
    n = np.int64(n_samp)
    agree = np.trace(table, axis1=1, axis2=2)
    # Integer chance term Σ_k row_k col_k, compared with n² exactly to find kappa's 0/0.
    chance = (table.sum(axis=2) * table.sum(axis=1)).sum(axis=1)
    po = agree / n
    pc = chance / (n * n)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(chance == n * n, np.nan, (po - pc) / (1.0 - pc))


def _row(label, lo, hi, truth, dosage, gt, maf, stats, n_boot, rng) -> dict:
    n_sites, n_samp = truth.shape
    row = {"bin": label, "maf_lo": lo, "maf_hi": hi, "n_sites": n_sites, "n_genotypes": n_sites * n_samp}
    if n_sites == 0 or n_samp == 0:
        row.update({k: np.nan for k in COLUMNS if k not in row})
        return row
    row["r2"] = float(_pooled_r2(stats.sum(axis=0)))
    if n_boot > 0:
        boot = _bootstrap_r2(stats, n_boot, rng)
        if np.all(np.isnan(boot)):
            row["r2_lo"] = row["r2_hi"] = np.nan
        else:
            row["r2_lo"], row["r2_hi"] = (float(v) for v in np.nanpercentile(boot, _CI_PERCENTILES))
    else:
        row["r2_lo"] = row["r2_hi"] = np.nan
    match = gt == truth
    row["concordance"] = float(match.mean())
    carrier = (truth > 0) | (gt > 0)
    row["nonref_concordance"] = float(match[carrier].mean()) if carrier.any() else np.nan
    iqs = _site_iqs(truth, gt)
    row["iqs"] = float(np.nanmean(iqs)) if np.any(~np.isnan(iqs)) else np.nan
    g, t = gt.astype(np.int64), truth.astype(np.int64)
    tp = np.minimum(g, t).sum()
    fp = np.maximum(g - t, 0).sum()
    fn = np.maximum(t - g, 0).sum()
    row["minor_f1"] = float(2 * tp / (2 * tp + fp + fn)) if (tp + fp + fn) > 0 else np.nan
    row["mean_truth_maf"] = float(maf.mean())
    return row


def score(truth: np.ndarray, dosage: np.ndarray, gt: np.ndarray, panel_af: np.ndarray, *,
          bins: Sequence[float], n_boot: int = 200, seed: int = 0) -> pd.DataFrame:
    """Imputation accuracy by panel-MAF bin (pure numpy).

    Parameters
    ----------
    truth : ndarray, int, shape (n_sites, n_samples)
        True ALT-allele count (0/1/2).
    dosage : ndarray, float, shape (n_sites, n_samples)
        Imputed ALT dosage in [0, 2].
    gt : ndarray, int, shape (n_sites, n_samples)
        Imputed best-guess ALT-allele count (0/1/2).
    panel_af : ndarray, float, shape (n_sites,)
        ALT frequency in the reference panel.
    bins : sequence of float, length n_bins + 1
        Increasing MAF edges; bins are ``[e0,e1), ..., [e_{n-1}, e_n]`` (the last closed).
    n_boot : int
        Site-bootstrap replicates for the r² interval (0 = no interval).
    seed : int
        Bootstrap seed; each row draws from its own stream ``(seed, row index)``, so a row's
        interval does not depend on the other rows.

    Returns
    -------
    pandas.DataFrame
        One row per label, in order ``"monomorphic"``, the MAF bins, ``"all"`` (every
        panel-polymorphic site), with columns :data:`COLUMNS`. Rows without sites are kept
        (counts 0, metrics NaN) so tables of different methods line up.

    Notes
    -----
    Minor-allele coding: at sites with ``panel_af > 0.5``, ``truth -> 2 - truth``,
    ``dosage -> 2 - dosage``, ``gt -> 2 - gt``; ``MAF = min(af, 1 - af)``. Sites with
    ``af`` 0 or 1 are the "monomorphic" row (``maf_lo = maf_hi = 0``). The metrics
    (``r2``, its interval, ``concordance``, ``nonref_concordance``, ``iqs``, ``minor_f1``,
    ``mean_truth_maf``) are defined in the module docstring.
    """
    truth = np.asarray(truth)
    dosage = np.asarray(dosage, dtype=np.float64)
    gt = np.asarray(gt)
    panel_af = np.asarray(panel_af, dtype=np.float64)
    edges = np.asarray(bins, dtype=np.float64)
    _check_score_inputs(truth, dosage, gt, panel_af, edges)
    truth, gt, dosage = _minor_coded(panel_af, truth.astype(np.int8), gt.astype(np.int8), dosage)
    maf = np.minimum(panel_af, 1.0 - panel_af)
    stats = _site_stats(truth, dosage)
    rows = []
    for r, (label, lo, hi, sel) in enumerate(_score_groups(edges, maf, (panel_af == 0) | (panel_af == 1))):
        rng = np.random.default_rng([seed, r])
        rows.append(_row(label, float(lo), float(hi), truth[sel], dosage[sel], gt[sel], maf[sel],
                         stats[sel], n_boot, rng))
    binned = sum(row["n_sites"] for row in rows[1:-1])
    if binned != rows[-1]["n_sites"]:
        log.warning("%d polymorphic sites fall outside the MAF bins %s (they count in 'all' only)",
                    rows[-1]["n_sites"] - binned, list(edges))
    return pd.DataFrame(rows, columns=COLUMNS)


def paired_r2_difference(truth: np.ndarray, dosage_a: np.ndarray, dosage_b: np.ndarray, panel_af: np.ndarray, *,
                         bins: Sequence[float], n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Two methods' r² on the same genotypes by panel-MAF bin, and a paired site-bootstrap interval of their difference.

    Each replicate resamples a row's sites once and scores both methods on those sites, so what the sites share
    (how hard they are to impute) cancels from the difference: whether ``a`` is below ``b`` in a bin is then a
    question of the interval, not of two overlapping per-method intervals. Coding, bins and rows are those of
    :func:`score`.

    Returns
    -------
    pandas.DataFrame
        Columns ``bin, n_sites, r2_a, r2_b, diff`` (``r2_a - r2_b``), ``diff_lo, diff_hi`` (2.5 / 97.5 percentiles
        over ``n_boot`` replicates; NaN without sites or with ``n_boot`` 0), one row per label of :func:`score`.
    """
    truth = np.asarray(truth)
    panel_af = np.asarray(panel_af, dtype=np.float64)
    edges = np.asarray(bins, dtype=np.float64)
    stats = []
    for dosage in (dosage_a, dosage_b):
        dosage = np.asarray(dosage, dtype=np.float64)
        _check_score_inputs(truth, dosage, truth, panel_af, edges)
        stats.append(_site_stats(*_minor_coded(panel_af, truth, dosage)))
    maf = np.minimum(panel_af, 1.0 - panel_af)
    rows = []
    for r, (label, _, _, sel) in enumerate(_score_groups(edges, maf, (panel_af == 0) | (panel_af == 1))):
        a, b = stats[0][sel], stats[1][sel]
        r2_a, r2_b = float(_pooled_r2(a.sum(axis=0))), float(_pooled_r2(b.sum(axis=0)))
        lo = hi = np.nan
        if n_boot > 0 and len(a):
            diff = np.empty(n_boot)
            for start, stop, w in _bootstrap_weights(len(a), n_boot, np.random.default_rng([seed, r])):
                diff[start:stop] = _pooled_r2(w @ a) - _pooled_r2(w @ b)
            if not np.all(np.isnan(diff)):
                lo, hi = (float(v) for v in np.nanpercentile(diff, _CI_PERCENTILES))
        rows.append({"bin": label, "n_sites": int(sel.sum()), "r2_a": r2_a, "r2_b": r2_b, "diff": r2_a - r2_b,
                     "diff_lo": lo, "diff_hi": hi})
    return pd.DataFrame(rows)


def _minor_coded(panel_af: np.ndarray, *counts: np.ndarray) -> list[np.ndarray]:
    """ALT counts or dosages (sites x samples) recoded to the panel-minor allele: ``2 - x`` at sites with
    ``panel_af > 0.5``, each array keeping its dtype."""
    flip = (np.asarray(panel_af) > 0.5)[:, None]
    return [np.where(flip, 2 - x, x).astype(x.dtype, copy=False) for x in counts]


def _check_score_inputs(truth, dosage, gt, panel_af, edges) -> None:
    """ValueError unless :func:`score`'s arrays have matching shapes and values in range."""
    if truth.ndim != 2 or dosage.shape != truth.shape or gt.shape != truth.shape:
        raise ValueError(f"truth {truth.shape}, dosage {dosage.shape}, gt {gt.shape} must share one 2-D shape")
    if panel_af.shape != (truth.shape[0],):
        raise ValueError(f"panel_af has shape {panel_af.shape}, expected ({truth.shape[0]},)")
    if len(edges) < 2 or np.any(np.diff(edges) <= 0) or edges[0] < 0 or edges[-1] > 0.5:
        raise ValueError(f"bins must be >= 2 increasing MAF edges within [0, 0.5], got {list(edges)}")
    for name, a in (("truth", truth), ("gt", gt)):
        if a.size and (a.min() < 0 or a.max() > 2):
            raise ValueError(f"{name} must hold allele counts 0/1/2")
    if np.any((panel_af < 0) | (panel_af > 1)) or np.any(np.isnan(panel_af)):
        raise ValueError("panel_af must lie in [0, 1]")


def _site_stats(truth: np.ndarray, dosage: np.ndarray) -> np.ndarray:
    """Per-site sums ``n, Σx, Σy, Σxx, Σyy, Σxy`` (x = dosage, y = truth): ndarray, float64, shape (n_sites, 6)."""
    y = truth.astype(np.float64)
    return np.stack([
        np.full(len(y), truth.shape[1], dtype=np.float64),
        dosage.sum(axis=1), y.sum(axis=1),
        (dosage * dosage).sum(axis=1), (y * y).sum(axis=1), (dosage * y).sum(axis=1),
    ], axis=1)


def _score_groups(edges: np.ndarray, maf: np.ndarray, mono: np.ndarray) -> list[tuple]:
    """The rows of a score table: ``(label, maf_lo, maf_hi, site mask)`` for monomorphic, each bin, all."""
    groups = [(MONOMORPHIC, 0.0, 0.0, mono)]
    for k in range(len(edges) - 1):
        lo, hi = edges[k], edges[k + 1]
        last = k == len(edges) - 2
        in_bin = ~mono & (maf >= lo) & ((maf <= hi) if last else (maf < hi))
        groups.append((_bin_label(lo, hi, last), lo, hi, in_bin))
    groups.append((ALL, 0.0, 0.5, ~mono))
    return groups


# --------------------------------------------------------------------------- files


def write_table(df: pd.DataFrame, out_tsv: str | os.PathLike) -> None:
    with atomic_open(out_tsv, "w", newline="") as fh:
        df.to_csv(fh, sep="\t", index=False, float_format=_FLOAT_FORMAT, na_rep="NaN")


def evaluate_method(
    h5: str | os.PathLike,
    split_tsv: str | os.PathLike,
    array_sites_tsv: str | os.PathLike,
    imputed_vcf: str | os.PathLike,
    runtime_json: str | os.PathLike,
    out_tsv: str | os.PathLike,
    *,
    method: str,
    bins: Sequence[float],
    n_boot: int,
    seed: int,
) -> pd.DataFrame:
    """Score one method's imputed VCF against the held-out test haplotypes.

    Parameters
    ----------
    h5 : path
        Ingested panel (layout :mod:`omicslm.impute.layout`).
    split_tsv : path
        ``sample pop super_pop role``; the panel is roles ``reference`` + ``validation``,
        the targets (truth) are role ``test``.
    array_sites_tsv : path
        ``pos idx`` of the sites given to the methods; they are not scored.
    imputed_vcf : path
        The method's output for the test samples.
    runtime_json : path
        ``{"method": str, "seconds": float, "threads": int}``.
    out_tsv : path
        Score table, written atomically: ``method`` + :data:`COLUMNS` + ``seconds``.
    method : str
        Name written in the ``method`` column.
    bins, n_boot, seed
        Passed to :func:`score`.

    Returns
    -------
    pandas.DataFrame
        The table written to ``out_tsv``.
    """
    panel, sites, test_idx, truth, panel_af = _held_out_truth(h5, split_tsv, array_sites_tsv, method)
    seconds = _read_seconds(runtime_json, method)
    dosage, gt = read_imputed(imputed_vcf, panel.pos[sites], panel.samples[test_idx].tolist(),
                              ref=panel.ref[sites], alt=panel.alt[sites], contig=None)
    table = score(truth, dosage, gt, panel_af, bins=bins, n_boot=n_boot, seed=seed)

    table.insert(0, "method", method)
    table["seconds"] = seconds
    write_table(table, out_tsv)
    all_row = table.loc[table["bin"] == ALL].iloc[0]
    log.info("%s: aggregate r2 %.4f [%.4f, %.4f] over %d sites, %.1f s", method, all_row["r2"],
             all_row["r2_lo"], all_row["r2_hi"], all_row["n_sites"], seconds)
    return table


def compare_methods(h5: str | os.PathLike, split_tsv: str | os.PathLike, array_sites_tsv: str | os.PathLike,
                    vcf_a: str | os.PathLike, vcf_b: str | os.PathLike, *, bins: Sequence[float], n_boot: int = 1000,
                    seed: int = 0) -> pd.DataFrame:
    """:func:`paired_r2_difference` of two imputed VCFs of the test samples (``a`` minus ``b``), on the sites and
    truth :func:`evaluate_method` scores."""
    panel, sites, test_idx, truth, panel_af = _held_out_truth(h5, split_tsv, array_sites_tsv, "paired comparison")
    dosages = [read_imputed(vcf, panel.pos[sites], panel.samples[test_idx].tolist(), ref=panel.ref[sites],
                            alt=panel.alt[sites], contig=None)[0] for vcf in (vcf_a, vcf_b)]
    return paired_r2_difference(truth, *dosages, panel_af, bins=bins, n_boot=n_boot, seed=seed)


def _held_out_truth(h5, split_tsv, array_sites_tsv, what: str):
    """What scoring compares against: ``(panel, scored sites, test sample indices, truth ALT counts (sites, test
    samples) int8, reference-panel ALT frequency)``; the scored sites are every site not on the array."""
    panel = read_panel(h5)
    split = read_split(split_tsv)
    test_idx = role_indices(panel, split, ["test"], split_tsv=split_tsv, h5=h5)
    ref_idx = role_indices(panel, split, PANEL_ROLES, split_tsv=split_tsv, h5=h5)
    if not len(test_idx) or not len(ref_idx):
        raise InputError(split_tsv, f"need test and reference/validation samples, got {len(test_idx)} and {len(ref_idx)}")
    a_idx = read_array_sites(array_sites_tsv, panel, h5)["idx"].to_numpy()
    scored = np.ones(panel.n_variants, dtype=bool)
    scored[a_idx] = False
    sites = np.flatnonzero(scored)
    log.info("%s: scoring %d of %d sites (%d on the array) in %d test samples; panel = %d samples",
             what, len(sites), panel.n_variants, len(a_idx), len(test_idx), len(ref_idx))
    hap = panel.hap[sites]
    truth = hap[:, test_idx, :].sum(axis=2, dtype=np.int8)
    return panel, sites, test_idx, truth, panel_alt_frequency(hap, ref_idx)


def _read_seconds(runtime_json: str | os.PathLike, method: str) -> float:
    """``seconds`` of a runtime JSON (see :func:`evaluate_method`); warns when it names another method."""
    try:
        with open(runtime_json) as fh:
            runtime = json.load(fh)
        seconds = float(runtime["seconds"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(runtime_json, f"cannot read 'seconds' from runtime JSON ({exc!r})") from exc
    if runtime.get("method", method) != method:
        log.warning("%s: runtime JSON %s names method %r", method, runtime_json, runtime.get("method"))
    return seconds


def combine_tables(tsvs: Sequence[str | os.PathLike], out_tsv: str | os.PathLike) -> pd.DataFrame:
    """Concatenate per-method score tables (same columns) into one table, atomically.

    Parameters
    ----------
    tsvs : sequence of path
        Tables written by :func:`evaluate_method`.
    out_tsv : path
        Combined table, e.g. ``results/impute_eval.tsv``.

    Returns
    -------
    pandas.DataFrame
    """
    if not tsvs:
        raise ValueError("combine_tables needs at least one table")
    frames = []
    for path in tsvs:
        df = pd.read_csv(path, sep="\t")
        if frames and list(df.columns) != list(frames[0].columns):
            raise InputError(path, f"columns {list(df.columns)} differ from {tsvs[0]}'s {list(frames[0].columns)}")
        frames.append(df)
    combined = pd.concat(frames, ignore_index=True)
    key = [c for c in ("method", "chrom", "bin") if c in combined.columns]  # chrom: the targets' tables
    dup = combined.duplicated(key) if {"method", "bin"} <= set(key) else None
    if dup is not None and dup.any():
        raise InputError(out_tsv, f"the same {'/'.join(key)} appears in two input tables",
                         record=" ".join(str(combined.loc[dup, c].iloc[0]) for c in key))
    write_table(combined, out_tsv)
    return combined
