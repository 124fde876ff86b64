"""Join each labelled gRNA to its 30mer: the spacer followed by NGG inside its own oligo, either strand."""

from __future__ import annotations

import logging
import os
from collections import defaultdict

import pandas as pd

from omicslm.crispr.fasta import iter_fasta
from omicslm.crispr.io import read_labels
from omicslm.crispr.kmers import CONTEXT, FLANK5, SPACER
from omicslm.errors import InputError
from omicslm.io.atomic import atomic_open

log = logging.getLogger(__name__)

MISSING_POLICIES = ("skip", "error")
MULTIPLE_POLICIES = ("first", "skip", "error")
GUIDE_COLUMNS = ["id", "grna", "site", "mer30", "efficiency"]


def join_guides(labels: str | os.PathLike, mers30: str | os.PathLike, out: str | os.PathLike, *,
                on_missing: str = "skip", on_multiple: str = "first") -> dict[str, int]:
    """Write ``guides.tsv`` (``id grna site mer30 efficiency``): one row per gRNA with exactly one chosen 30mer.

    Parameters
    ----------
    labels : path
        ``labels.tsv`` from :mod:`omicslm.crispr.io` (``id`` = oligo id).
    mers30 : path
        30mer fasta from :func:`omicslm.crispr.kmers.extract_mers` (ids ``<oligo>_<p|m>_<pos>``).
    on_missing : {"skip", "error"}
        A gRNA whose spacer + NGG is not in its oligo.
    on_multiple : {"first", "skip", "error"}
        A gRNA matching several sites of its oligo: keep the first in CRISPRon order
        (plus strand first, then by position), drop it, or raise.

    Returns
    -------
    dict
        Counts: ``joined``, ``missing``, ``multiple`` (the policy applied is logged).
    """
    if on_missing not in MISSING_POLICIES or on_multiple not in MULTIPLE_POLICIES:
        raise ValueError(f"on_missing must be in {MISSING_POLICIES} and on_multiple in {MULTIPLE_POLICIES}")
    by_oligo_spacer: dict[tuple[str, str], list[tuple[str, str]]] = defaultdict(list)
    for site, seq in iter_fasta(mers30, allow_empty=True):  # no site at all: the error below says so
        parts = site.rsplit("_", 2)
        if len(parts) != 3 or parts[1] not in ("p", "m") or len(seq) != CONTEXT:
            raise InputError(mers30, f"not a CRISPRon 30mer record (id <oligo>_<p|m>_<pos>, {CONTEXT} nt)",
                             record=site)
        by_oligo_spacer[(parts[0], seq[FLANK5:FLANK5 + SPACER])].append((site, seq))

    df = read_labels(labels)
    rows, missing, multiple = [], [], []
    for rid, grna, eff in zip(df.id, df.grna, df.efficiency):
        hits = by_oligo_spacer.get((rid, grna), [])
        if not hits:
            if on_missing == "error":
                raise InputError(labels, f"gRNA {grna} followed by NGG not found in its oligo ({mers30})", record=rid)
            missing.append(rid)
            continue
        if len(hits) > 1:
            if on_multiple == "error":
                raise InputError(labels, f"gRNA {grna} matches {len(hits)} sites of its oligo: "
                                         f"{', '.join(h[0] for h in hits)}", record=rid)
            multiple.append(rid)
            if on_multiple == "skip":
                continue
        site, seq = hits[0]
        rows.append((rid, grna, site, seq, eff))
    if missing:
        log.warning("%d gRNAs have no spacer+NGG site in their oligo (skipped), e.g. %s", len(missing),
                    ", ".join(missing[:5]))
    if multiple:
        log.warning("%d gRNAs match several sites of their oligo (policy %s), e.g. %s", len(multiple), on_multiple,
                    ", ".join(multiple[:5]))
    if not rows:
        raise InputError(labels, f"no gRNA could be joined to a 30mer of {mers30}")
    with atomic_open(out) as fh:
        pd.DataFrame(rows, columns=GUIDE_COLUMNS).to_csv(fh, sep="\t", index=False, float_format="%.6g")
    counts = {"joined": len(rows), "missing": len(missing), "multiple": len(multiple)}
    log.info("joined %d of %d gRNAs to a 30mer (missing %d, multiple %d -> %s)", len(rows), len(df),
             len(missing), len(multiple), on_multiple)
    return counts


def read_guides(path: str | os.PathLike) -> pd.DataFrame:
    """Read ``guides.tsv`` written by :func:`join_guides`."""
    df = pd.read_csv(path, sep="\t", dtype={"id": str, "grna": str, "site": str, "mer30": str})
    missing = [c for c in GUIDE_COLUMNS if c not in df.columns]
    if missing:
        raise InputError(path, f"no column(s) {', '.join(missing)}")
    return df
