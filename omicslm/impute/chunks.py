"""Chunked imputation of one chromosome, as the imputation servers run it.

A chromosome is cut into consecutive *cores* that tile the panel's span with no gap
and no overlap; each core is imputed with ``flank_bp`` of context on both sides (the
*chunk* window ``start..end``), then only the core's records are kept and the cores
are concatenated in order::

    make_chunks / write_chunks   ->  chunks.tsv (one row per chunk; ``kept`` marks those imputed)
    run_beagle(..., region=(contig, start, end))  or  run_minimac4(..., region=...)
    cut_core(chunk.vcf.gz, core.vcf.gz, contig=..., core_start=..., core_end=...)
    gather_cores([core_000.vcf.gz, core_001.vcf.gz, ...], chr.vcf.gz)

A chunk whose window holds fewer than ``min_target_sites`` typed sites is dropped
(logged and counted) like the servers drop chunks with too little overlap; its core's
sites are then absent from the gathered VCF.

Every output is bgzipped and tabix-indexed where it is a VCF, and atomic: made in a
temporary directory beside the final path, the index renamed before its VCF.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Sequence

import cyvcf2
import numpy as np
import pandas as pd

from omicslm.errors import InputError
from omicslm.impute.baselines import index_and_move, require_file, run_tool
from omicslm.io.atomic import atomic_open, scratch_dir

logger = logging.getLogger(__name__)

#: Columns of a chunk table, in the order :func:`write_chunks` writes them.
CHUNK_COLUMNS = ("chunk", "contig", "core_start", "core_end", "start", "end",
                 "n_panel_sites", "n_target_sites", "kept")
_INT_COLUMNS = ("core_start", "core_end", "start", "end", "n_panel_sites", "n_target_sites")
_BOOL_TEXT = {"true": True, "false": False, "1": True, "0": False}


# --------------------------------------------------------------------------- chunk table


def _check_chunk_params(size_bp: int, flank_bp: int, min_target_sites: int) -> None:
    for name, value, low in (("size_bp", size_bp, 1), ("flank_bp", flank_bp, 0),
                             ("min_target_sites", min_target_sites, 1)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")


def _count_in(sorted_pos: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Number of ``sorted_pos`` in each 1-based inclusive window ``start[i]..end[i]``."""
    return np.searchsorted(sorted_pos, end, side="right") - np.searchsorted(sorted_pos, start, side="left")


def make_chunks(
    panel_positions: Sequence[int] | np.ndarray,
    target_positions: Sequence[int] | np.ndarray,
    *,
    contig: str,
    size_bp: int,
    flank_bp: int,
    min_target_sites: int,
) -> pd.DataFrame:
    """Cut the panel's span of one chromosome into imputation chunks.

    The span runs from the first to the last panel position. Cores of ``size_bp``
    start at the first panel position and follow one another (the last one is
    shortened to end at the last panel position); each chunk window is its core
    widened by ``flank_bp`` on both sides and clipped to the span.

    Parameters
    ----------
    panel_positions : array-like of int
        1-based positions of the panel's records on ``contig`` (any order, repeats allowed).
    target_positions : array-like of int
        1-based positions of the target's (typed) records on ``contig``.
    contig : str
        Chromosome name, used in the ``contig`` column and the chunk names.
    size_bp : int
        Core length in bp (>= 1).
    flank_bp : int
        Context added on both sides of a core (>= 0).
    min_target_sites : int
        A chunk is kept when its window holds at least this many target sites (>= 1,
        since a window without typed sites cannot be imputed).

    Returns
    -------
    pandas.DataFrame
        One row per chunk with the columns of :data:`CHUNK_COLUMNS`: ``chunk``
        (``{contig}_{index}``, index zero-padded to at least 3 digits), ``contig``,
        ``core_start``, ``core_end``, ``start``, ``end`` (1-based inclusive),
        ``n_panel_sites`` and ``n_target_sites`` (records in ``start..end``) and
        ``kept``. ``df.attrs["n_dropped"]`` counts the chunks not kept.

    Raises
    ------
    ValueError
        No panel position, a position below 1, or a parameter out of range.
    """
    _check_chunk_params(size_bp, flank_bp, min_target_sites)
    panel = np.sort(np.asarray(panel_positions, dtype=np.int64).ravel())
    target = np.sort(np.asarray(target_positions, dtype=np.int64).ravel())
    if panel.size == 0:
        raise ValueError(f"no panel position on {contig}: nothing to cut into chunks")
    if panel[0] < 1 or (target.size and target[0] < 1):
        raise ValueError("positions are 1-based; found one below 1")
    first, last = int(panel[0]), int(panel[-1])
    n = (last - first) // size_bp + 1
    core_start = first + np.arange(n, dtype=np.int64) * size_bp
    core_end = np.minimum(core_start + size_bp - 1, last)
    start = np.maximum(core_start - flank_bp, first)
    end = np.minimum(core_end + flank_bp, last)
    n_target = _count_in(target, start, end)
    width = max(3, len(str(n - 1)))
    df = pd.DataFrame({
        "chunk": [f"{contig}_{i:0{width}d}" for i in range(n)],
        "contig": contig,
        "core_start": core_start,
        "core_end": core_end,
        "start": start,
        "end": end,
        "n_panel_sites": _count_in(panel, start, end),
        "n_target_sites": n_target,
        "kept": n_target >= min_target_sites,
    })
    for row in df.loc[~df["kept"]].itertuples():
        logger.warning("dropping chunk %s (%s:%d-%d): %d target sites, fewer than %d; its core %d-%d is not imputed",
                       row.chunk, contig, row.start, row.end, row.n_target_sites, min_target_sites,
                       row.core_start, row.core_end)
    df.attrs["n_dropped"] = int((~df["kept"]).sum())
    logger.info("%s:%d-%d cut into %d chunks of %d bp (+%d bp flanks): %d kept, %d dropped",
                contig, first, last, n, size_bp, flank_bp, n - df.attrs["n_dropped"], df.attrs["n_dropped"])
    return df


def _read_positions(vcf_path: Path, contig: str) -> np.ndarray:
    """Positions of ``vcf_path``'s records on ``contig`` (samples are not parsed)."""
    indexed = Path(f"{vcf_path}.tbi").is_file() or Path(f"{vcf_path}.csi").is_file()
    vcf = cyvcf2.VCF(str(vcf_path), samples=[])
    try:
        if indexed:
            if contig not in vcf.seqnames:
                return np.empty(0, dtype=np.int64)
            records = vcf(contig)
        else:
            records = (rec for rec in vcf if rec.CHROM == contig)
        return np.fromiter((rec.POS for rec in records), dtype=np.int64)
    finally:
        vcf.close()


def write_chunks(
    target_vcf: str | os.PathLike,
    panel_vcf: str | os.PathLike,
    out_tsv: str | os.PathLike,
    *,
    contig: str,
    size_bp: int,
    flank_bp: int,
    min_target_sites: int,
) -> pd.DataFrame:
    """Read the panel's and target's positions on ``contig``, cut chunks, write the table atomically.

    Parameters
    ----------
    target_vcf, panel_vcf : path
        The (phased) target and the reference panel; indexed files are read by region,
        others streamed.
    out_tsv : path
        Tab-separated chunk table with a header (:data:`CHUNK_COLUMNS`), every chunk
        listed, ``kept`` written ``True``/``False``.
    contig, size_bp, flank_bp, min_target_sites
        As for :func:`make_chunks`.

    Returns
    -------
    pandas.DataFrame
        The table written (see :func:`make_chunks`).

    Raises
    ------
    InputError
        A file is missing, has no record on ``contig``, or no chunk is kept; nothing is written.
    """
    target_vcf = require_file(target_vcf, "target VCF")
    panel_vcf = require_file(panel_vcf, "reference panel VCF")
    panel_pos = _read_positions(panel_vcf, contig)
    if panel_pos.size == 0:
        raise InputError(panel_vcf, f"no record on contig {contig!r}")
    target_pos = _read_positions(target_vcf, contig)
    if target_pos.size == 0:
        raise InputError(target_vcf, f"no record on contig {contig!r}")
    df = make_chunks(panel_pos, target_pos, contig=contig, size_bp=size_bp, flank_bp=flank_bp,
                     min_target_sites=min_target_sites)
    if not df["kept"].any():
        raise InputError(target_vcf, f"no chunk of {contig} is kept: every one of the {len(df)} windows holds "
                                     f"fewer than {min_target_sites} target sites (most: {df['n_target_sites'].max()})")
    with atomic_open(out_tsv) as fh:
        df.to_csv(fh, sep="\t", index=False, columns=list(CHUNK_COLUMNS))
    return df


def read_chunks(tsv: str | os.PathLike) -> pd.DataFrame:
    """Read a chunk table written by :func:`write_chunks` and check it.

    Parameters
    ----------
    tsv : path
        Tab-separated table with (at least) the columns of :data:`CHUNK_COLUMNS`.

    Returns
    -------
    pandas.DataFrame
        The table with integer coordinates and counts, boolean ``kept``, str ``chunk`` and ``contig``.

    Raises
    ------
    InputError
        Missing file or columns, no row, a non-integer coordinate, a ``kept`` other than
        true/false, a repeated chunk name, a window not holding its core, or cores of a
        contig that do not follow one another; the message names the chunk.
    """
    path = require_file(tsv, "chunk table")
    df = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    missing = [c for c in CHUNK_COLUMNS if c not in df.columns]
    if missing:
        raise InputError(path, f"missing column(s) {', '.join(missing)}; expected {', '.join(CHUNK_COLUMNS)}")
    if df.empty:
        raise InputError(path, "the chunk table has no row")
    for col in _INT_COLUMNS:
        bad = ~df[col].str.fullmatch(r"-?\d+")
        if bad.any():
            row = df.loc[bad].iloc[0]
            raise InputError(path, f"{col} {row[col]!r} is not an integer", record=row["chunk"])
        df[col] = df[col].astype(np.int64)
    kept = df["kept"].str.lower().map(_BOOL_TEXT)
    if kept.isna().any():
        row = df.loc[kept.isna()].iloc[0]
        raise InputError(path, f"kept {row['kept']!r} is not true/false", record=row["chunk"])
    df["kept"] = kept.astype(bool)
    _check_chunk_rows(path, df)
    return df


def _check_chunk_rows(path: Path, df: pd.DataFrame) -> None:
    """Raise InputError unless every window holds its core and each contig's cores tile its span."""
    dup = df["chunk"].duplicated()
    if dup.any():
        raise InputError(path, "chunk name listed more than once", record=df.loc[dup, "chunk"].iloc[0])
    ok = (1 <= df["start"]) & (df["start"] <= df["core_start"]) & (df["core_start"] <= df["core_end"]) \
        & (df["core_end"] <= df["end"])
    if not ok.all():
        row = df.loc[~ok].iloc[0]
        raise InputError(path, f"window {row['start']}-{row['end']} does not hold core "
                               f"{row['core_start']}-{row['core_end']} (1 <= start <= core_start <= core_end <= end)",
                         record=row["chunk"])
    for _, group in df.groupby("contig", sort=False):
        follows = group["core_start"].to_numpy()[1:] == group["core_end"].to_numpy()[:-1] + 1
        if not follows.all():
            name = group["chunk"].iloc[1 + int(np.argmin(follows))]
            raise InputError(path, "core does not start right after the previous chunk's core", record=name)


# --------------------------------------------------------------------------- cores


def cut_core(
    chunk_vcf: str | os.PathLike,
    out_vcf: str | os.PathLike,
    *,
    contig: str,
    core_start: int,
    core_end: int,
) -> Path:
    """Keep the records of an imputed chunk whose POS lies in its core, ``core_start <= POS <= core_end``.

    Selection is by POS only (``bcftools view --regions-overlap 0``, or ``-t`` with
    ``--targets-overlap 0`` when the chunk VCF has no index), so an indel starting just
    before the core is left to the previous core and every record lands in exactly one core.

    Parameters
    ----------
    chunk_vcf : path
        One chunk's imputed VCF (bgzipped).
    out_vcf : path
        Output ``.vcf.gz``; ``out_vcf.tbi`` is written too.
    contig : str
    core_start, core_end : int
        1-based inclusive core.

    Returns
    -------
    Path of ``out_vcf``.

    Raises
    ------
    InputError
        ``chunk_vcf`` does not exist.
    ValueError
        ``core_start`` is below 1 or after ``core_end``.
    RuntimeError
        bcftools failed; the message quotes its output.
    """
    chunk_vcf = require_file(chunk_vcf, "chunk VCF")
    out_vcf = Path(out_vcf)
    if not 1 <= int(core_start) <= int(core_end):
        raise ValueError(f"core {core_start}-{core_end} is not a 1-based window with start <= end")
    region = f"{contig}:{int(core_start)}-{int(core_end)}"
    indexed = Path(f"{chunk_vcf}.tbi").is_file() or Path(f"{chunk_vcf}.csi").is_file()
    select = ["-r", region, "--regions-overlap", "0"] if indexed else ["-t", region, "--targets-overlap", "0"]
    with scratch_dir(out_vcf) as tmp:
        result = tmp / "core.vcf.gz"
        run_tool(["bcftools", "view", "--no-version", *select, "-Oz", "-o", result, chunk_vcf.resolve()],
             tool="bcftools view")
        index_and_move(result, out_vcf)
    return out_vcf


def _count_records(vcf_path: Path) -> int:
    vcf = cyvcf2.VCF(str(vcf_path), samples=[])
    try:
        return sum(1 for _ in vcf)
    finally:
        vcf.close()


def _check_gathered(gathered: Path, sources: Sequence[Path], counts: Sequence[int]) -> None:
    """Raise RuntimeError unless ``gathered`` is sorted with no (chrom, pos, ref, alt) twice.

    Record ``i`` of ``gathered`` came from ``sources[k]`` where ``k`` is found from the
    cumulative ``counts`` (``bcftools concat`` without ``-a`` streams its inputs in order),
    so a violation names the two chunk files involved.
    """
    bounds = np.cumsum(counts)
    vcf = cyvcf2.VCF(str(gathered), samples=[])
    prev = None  # (chrom, pos, source index, description)
    seen_contigs: set[str] = set()
    at_pos: dict[tuple[str, str], int] = {}  # (ref, alts) -> source index, for records at prev's position
    n = 0
    try:
        for n, rec in enumerate(vcf, start=1):
            k = int(np.searchsorted(bounds, n - 1, side="right"))
            desc = f"{rec.CHROM}:{rec.POS} {rec.REF}>{','.join(rec.ALT) or '.'}"
            if prev is None or rec.CHROM != prev[0]:
                if rec.CHROM in seen_contigs:
                    _violation(f"{rec.CHROM} comes back after another contig", prev, desc, sources, k)
                seen_contigs.add(rec.CHROM)
                at_pos = {}
            elif rec.POS < prev[1]:
                _violation("positions decrease", prev, desc, sources, k)
            elif rec.POS > prev[1]:
                at_pos = {}
            key = (rec.REF, ",".join(rec.ALT))
            if key in at_pos:
                _violation("a site is present twice", (rec.CHROM, rec.POS, at_pos[key], desc), desc, sources, k)
            at_pos[key] = k
            prev = (rec.CHROM, rec.POS, k, desc)
    finally:
        vcf.close()
    if n != int(bounds[-1]):
        raise RuntimeError(f"bcftools concat wrote {n} records but the chunk cores hold {int(bounds[-1])}")


def _violation(problem: str, prev: tuple, desc: str, sources: Sequence[Path], k: int) -> None:
    raise RuntimeError(
        f"gathered chunk cores are not a clean tiling ({problem}): {prev[3]} from {sources[prev[2]]} "
        f"then {desc} from {sources[k]}; the chunk cores overlap or are out of order"
    )


def gather_cores(core_vcfs: Sequence[str | os.PathLike], out_vcf: str | os.PathLike) -> Path:
    """Concatenate the per-chunk core VCFs of a chromosome, in chunk order, and check the result.

    Runs ``bcftools concat`` (no ``-a``: the cores must already be in order), then checks
    that positions never decrease and that no (chrom, pos, ref, alt) appears twice.

    Parameters
    ----------
    core_vcfs : sequence of path
        The cores from :func:`cut_core`, in chunk order, all with the same samples.
    out_vcf : path
        Output ``.vcf.gz`` (returned as a Path), indexed (``out_vcf.tbi``).

    Raises
    ------
    InputError
        A core VCF does not exist.
    ValueError
        ``core_vcfs`` is empty.
    RuntimeError
        bcftools failed (e.g. the samples differ; its output is quoted), or the gathered
        records are out of order or repeated: the message names the two chunk files.
        Nothing is written then.
    """
    if not core_vcfs:
        raise ValueError("gather_cores needs at least one core VCF")
    sources = [require_file(p, "chunk core VCF").resolve() for p in core_vcfs]
    out_vcf = Path(out_vcf)
    counts = [_count_records(p) for p in sources]
    with scratch_dir(out_vcf) as tmp:
        file_list = tmp / "cores.txt"
        file_list.write_text("".join(f"{p}\n" for p in sources))
        result = tmp / "gathered.vcf.gz"
        run_tool(["bcftools", "concat", "--no-version", "-f", file_list, "-Oz", "-o", result], tool="bcftools concat")
        _check_gathered(result, sources, counts)
        index_and_move(result, out_vcf)
    logger.info("gathered %d records from %d chunk cores into %s", sum(counts), len(sources), out_vcf)
    return out_vcf
