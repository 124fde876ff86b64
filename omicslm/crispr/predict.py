"""Score every SpCas9 guide of your own sequences with a kept method (rule ``crispr_predict``).

:func:`predict_fasta` enumerates every NGG site on both strands whose 30mer context (4 nt + 20-nt spacer + NGG +
3 nt) lies inside a sequence, with the extractor the training data went through
(:func:`omicslm.crispr.kmers.iter_sites`), computes what the method needs (the binding energy included) and writes
one row per site: sequence id, strand, position, spacer, PAM, 30mer, predicted efficiency (0-100), the ensemble
members' spread, rank within the sequence (1 = highest), the spacer's GC fraction and a flag for a TTTT run (a Pol
III terminator in a U6-expressed guide). Sites whose 30mer holds N, sequences shorter than 30 nt and sequences
without an NGG site are counted and named in the log, not an error.

:func:`choose_method` picks the method when config names none: the best Spearman on out-of-sample rows of the
training data (each member's early-stopping or cross-validation fold rows), never on the test split.
"""

from __future__ import annotations

import logging
import os
import re
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from omicslm.crispr.fasta import iter_fasta
from omicslm.crispr.kept import load_kept
from omicslm.crispr.kmers import CONTEXT, FLANK5, SPACER, iter_sites
from omicslm.errors import InputError
from omicslm.io.atomic import atomic_open

log = logging.getLogger(__name__)

COLUMNS = ["seq_id", "strand", "position", "spacer", "pam", "mer30", "predicted", "spread", "rank", "gc",
           "tttt"]
_ACGT = re.compile(r"^[ACGT]+$")


def out_of_sample_spearman(predictions: str | os.PathLike) -> tuple[float, int]:
    """Spearman of a trained method's ``oof`` column against the measured values, and its number of rows."""
    t = pd.read_csv(predictions, sep="\t", dtype={"id": str})
    rows = t.oof.notna() & (t.role != "test")
    return float(spearmanr(t.oof[rows], t.measured[rows]).statistic), int(rows.sum())


def _stack_spearman(blend: dict, member_predictions: dict) -> tuple[float, int]:
    tables = [pd.read_csv(member_predictions[m], sep="\t", dtype={"id": str}) for m in blend["members"]]
    oof = np.column_stack([t.oof.to_numpy(float) for t in tables])
    rows = ~np.isnan(oof).any(1) & (tables[0].role != "test").to_numpy()
    pred = blend["intercept"] + oof[rows] @ np.asarray(blend["weights"])
    return float(spearmanr(pred, tables[0].measured[rows]).statistic), int(rows.sum())


def choose_method(predictions: dict[str, str | os.PathLike], kept: dict[str, str | os.PathLike]) -> tuple[str, dict]:
    """The method with the best out-of-sample Spearman, and every method's ``(spearman, n_rows)``.

    ``predictions`` / ``kept``: method -> its predictions.tsv / kept directory. A stack is scored by its blend of
    the members' out-of-sample predictions (the rows its weights were fitted on: three numbers fitted, not a model).
    """
    import json

    scores = {}
    for name, path in predictions.items():
        record = json.loads((Path(kept[name]) / "method.json").read_text())
        scores[name] = (_stack_spearman(record, predictions) if record["kind"] == "stack"
                        else out_of_sample_spearman(path))
    usable = {m: s for m, s in scores.items() if np.isfinite(s[0])}
    if not usable:
        raise InputError(next(iter(predictions.values())), "no method has out-of-sample predictions to choose by: "
                                                           "name one in crispr.predict.method")
    best = max(usable, key=lambda m: usable[m][0])
    return best, scores


def _read_sequences(fasta: Path) -> dict[str, str]:
    if not fasta.is_file():
        raise InputError(fasta, "fasta file not found")
    records: dict[str, str] = {}
    for name, seq in iter_fasta(fasta):
        if name in records:
            raise InputError(fasta, "duplicate record name", record=name)
        records[name] = seq
    if not records:
        raise InputError(fasta, "fasta file has no records (empty, or no '>' header)")
    return records


def enumerate_sites(fasta: str | os.PathLike) -> tuple[pd.DataFrame, dict]:
    """Every scorable site of ``fasta``: a table (``seq_id strand position spacer pam mer30``) and what was left out.

    Returns the sites in the extractor's order and ``skipped``: reason -> sequence names (``short``: under 30 nt;
    ``no_ngg``: no NGG site with its 30mer inside; ``n_sites``: name -> sites dropped because their 30mer holds N
    or another non-ACGT letter).
    """
    fasta = Path(fasta)
    rows, skipped = [], {"short": [], "no_ngg": [], "n_sites": {}}
    for name, seq in _read_sequences(fasta).items():
        if len(seq) < CONTEXT:
            skipped["short"].append(name)
            continue
        n_before, n_bad = len(rows), 0
        for site in iter_sites(name, seq):
            if not _ACGT.match(site.mer30):
                n_bad += 1
                continue
            rows.append((name, "+" if site.strand == "p" else "-", site.pos, site.mer30[FLANK5:FLANK5 + SPACER],
                         site.mer30[FLANK5 + SPACER:FLANK5 + SPACER + 3], site.mer30))
        if n_bad:
            skipped["n_sites"][name] = n_bad
        elif len(rows) == n_before:
            skipped["no_ngg"].append(name)
    return pd.DataFrame(rows, columns=COLUMNS[:6]), skipped


def _log_skipped(fasta, skipped: dict) -> None:
    if skipped["short"]:
        log.warning("%s: %d sequence(s) shorter than %d nt, no site: %s", fasta, len(skipped["short"]), CONTEXT,
                    ", ".join(skipped["short"][:20]))
    if skipped["no_ngg"]:
        log.warning("%s: %d sequence(s) without an NGG site (30mer inside the sequence): %s", fasta,
                    len(skipped["no_ngg"]), ", ".join(skipped["no_ngg"][:20]))
    if skipped["n_sites"]:
        log.warning("%s: %d site(s) skipped for N (or another non-ACGT letter) in their 30mer, in %d sequence(s): %s",
                    fasta, sum(skipped["n_sites"].values()), len(skipped["n_sites"]),
                    ", ".join(f"{k} ({v})" for k, v in list(skipped["n_sites"].items())[:20]))


def _energies(spacers: pd.Series) -> np.ndarray:
    """Binding energies as the training data has them (energy.tsv: 4 decimals)."""
    from omicslm.crispr.energy import binding_energy

    cache: dict[str, float] = {}
    return np.array([cache.setdefault(s, float(f"{binding_energy(s):.4f}")) for s in spacers], dtype=np.float32)


def predict_fasta(fasta: str | os.PathLike, kept_dir: str | os.PathLike, out_tsv: str | os.PathLike) -> pd.DataFrame:
    """Score every site of ``fasta`` with the kept method in ``kept_dir``; write ``out_tsv`` (:data:`COLUMNS`).

    Raises
    ------
    InputError
        A missing or empty fasta, a duplicate record name, a foreign kept directory.
    """
    started = time.perf_counter()
    method = load_kept(kept_dir)
    sites, skipped = enumerate_sites(fasta)
    _log_skipped(fasta, skipped)
    if len(sites):
        energy = _energies(sites.spacer) if method.uses_energy else None
        per_member = method.predict_members(sites.mer30.to_numpy(), energy)
        sites["predicted"] = per_member.mean(axis=0)
        sites["spread"] = per_member.std(axis=0) if len(per_member) > 1 else np.nan
    else:
        sites["predicted"], sites["spread"] = np.array([], float), np.array([], float)
    sites["rank"] = sites.groupby("seq_id", sort=False)["predicted"].rank(ascending=False, method="first")
    sites["rank"] = sites["rank"].astype("int64")
    sites["gc"] = sites.spacer.str.count("[GC]") / SPACER
    sites["tttt"] = sites.spacer.str.contains("TTTT")
    with atomic_open(out_tsv) as fh:
        sites[COLUMNS].to_csv(fh, sep="\t", index=False, float_format="%.4f")
    seconds = time.perf_counter() - started
    log.info("%s: %d guides scored by %s in %.1f s (%.0f guides/s) -> %s", fasta, len(sites), method.name, seconds,
             len(sites) / max(seconds, 1e-9), out_tsv)
    return sites[COLUMNS]


def run_predict(fasta: str | os.PathLike, predictions: dict, kept: dict, out_tsv: str | os.PathLike, *,
                method: str | None = None) -> pd.DataFrame:
    """``crispr_predict``: score ``fasta`` with ``method``, or with the method :func:`choose_method` picks (logged)."""
    if method is None:
        method, scores = choose_method(predictions, kept)
        for name, (rho, n) in sorted(scores.items(), key=lambda kv: -np.nan_to_num(kv[1][0], nan=-2)):
            log.info("out-of-sample Spearman %-20s %.4f (%d guides)%s", name, rho, n, "  <- chosen" if name == method else "")
        log.info("method %s chosen by out-of-sample Spearman (crispr.predict.method: null; the test split is not used)",
                 method)
    else:
        log.info("method %s (crispr.predict.method)", method)
    return predict_fasta(fasta, kept[method], out_tsv)
