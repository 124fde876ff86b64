"""Ingest a phased VCF into the HDF5 panel layout, and tile its sites into windows.

:func:`vcf_to_hdf5` streams a VCF in chunks of records, keeps the biallelic SNPs of the
samples listed in a population panel file, checks that every genotype is diploid and
phased, filters on minor-allele frequency and writes the arrays described in
:mod:`omicslm.impute.layout`. :func:`write_windows` cuts the kept sites into the
overlapping windows a model is trained on.

Two record decoders give identical output. cyvcf2 (htslib) reads the header always, and
the records of BCF or when asked. For VCF text the default decoder splits each line in
Python and decodes the genotypes of a whole chunk at once with numpy: a phased
biallelic sample is always the 4 bytes ``a|b<TAB>``, so a chunk is one uint32 matrix.
That is 3-4x faster than cyvcf2's per-record ``genotype.array()`` (whose bundled
htslib alone parses slower than bcftools) and faster than ``bcftools view | query``
(see benchmarks/ingest.py); records that do not fit the 4-byte layout take an exact
per-sample parser.

Bad input (a missing sample, an unphased genotype, an unsorted or truncated file) raises
:class:`omicslm.errors.InputError` naming the file, the record and the problem; no
output is left behind because every file is written through :mod:`omicslm.io.atomic`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import time
import zlib
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import cyvcf2
import h5py
import numpy as np
import pandas as pd
import pysam
from tqdm import tqdm

from omicslm.errors import InputError
from omicslm.impute import layout
from omicslm.io.atomic import atomic_open, atomic_path

log = logging.getLogger(__name__)

PANEL_COLUMNS = ("sample", "pop", "super_pop", "gender")
#: Columns a panel file must have; ``gender`` is optional (autosomes do not need it).
PANEL_REQUIRED = ("sample", "pop", "super_pop")
#: Reasons a VCF record is not ingested, in the order they are tested.
SKIP_REASONS = ("multiallelic", "indel_or_other", "missing", "unphased", "below_maf")
ON_UNPHASED = ("error", "drop_site")

_GZIP_MAGIC = b"\x1f\x8b"
#: The empty BGZF block every complete bgzip file ends with (SAM/BAM spec, section 4.1.2).
_BGZF_EOF = bytes.fromhex("1f8b08040000000000ff0600424302001b0003000000000000000000")
_BASES = frozenset("ACGT")
_TYPE_INDEX = {name: i for i, name in enumerate(layout.TYPE_NAMES)}
#: Uncompressed size of one HDF5 chunk of calldata/HAP (bytes): big enough for gzip to
#: work well, small enough that reading one window decompresses little.
_HAP_CHUNK_BYTES = 1 << 20


# --------------------------------------------------------------------------- panel file


def read_population_panel(path: str | os.PathLike) -> pd.DataFrame:
    """Read a 1000 Genomes style population panel file.

    The file has a header line ``sample pop super_pop gender`` and one row per sample,
    separated by tabs or spaces (the 1000 Genomes file has trailing empty columns,
    which are ignored).

    Parameters
    ----------
    path : path-like
        e.g. ``integrated_call_samples_v3.20130502.ALL.panel``.

    Returns
    -------
    pandas.DataFrame
        Columns ``sample, pop, super_pop, gender`` (all str), one row per sample, in
        file order. A missing ``gender`` column is filled with ``"unknown"``.

    Raises
    ------
    InputError
        Missing file, missing required columns (named), empty values, duplicate samples.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "population panel file not found")
    try:
        df = pd.read_csv(path, sep=r"\s+", dtype=str, comment=None)
    except pd.errors.EmptyDataError:
        raise InputError(path, "population panel file is empty") from None
    except pd.errors.ParserError as e:
        raise InputError(path, f"cannot parse population panel file: {e}") from None
    df.columns = [str(c).strip() for c in df.columns]
    missing = [c for c in PANEL_REQUIRED if c not in df.columns]
    if missing:
        raise InputError(
            path,
            f"population panel file lacks column(s) {', '.join(missing)}; its header must be "
            f"'{' '.join(PANEL_COLUMNS)}' (found: {' '.join(df.columns)})",
        )
    if "gender" not in df.columns:
        df["gender"] = "unknown"
    df = df[list(PANEL_COLUMNS)].copy()
    if df.empty:
        raise InputError(path, "population panel file has a header but no samples")
    for col in PANEL_REQUIRED:
        empty = df[col].isna()
        if empty.any():
            row = int(np.flatnonzero(empty.to_numpy())[0])
            # +2: one for the header line, one because people count lines from 1
            raise InputError(path, f"empty '{col}' value", record=f"line {row + 2}")
    df["gender"] = df["gender"].fillna("unknown")
    dup = df["sample"].duplicated(keep=False)
    if dup.any():
        names = sorted(set(df.loc[dup, "sample"]))
        raise InputError(path, f"duplicate sample id(s) in population panel: {', '.join(names[:10])}")
    return df.reset_index(drop=True)


# --------------------------------------------------------------------------- file checks


def _check_vcf_file(path: Path) -> None:
    """Reject a missing, empty, non-VCF, plain-gzip or truncated bgzip file before parsing."""
    if not path.is_file():
        raise InputError(path, "VCF file not found")
    size = path.stat().st_size
    if size == 0:
        raise InputError(path, "VCF file is empty (0 bytes)")
    with open(path, "rb") as fh:
        head = fh.read(18)
        fh.seek(max(0, size - len(_BGZF_EOF)))
        tail = fh.read()
    if head[:2] == _GZIP_MAGIC:
        # BGZF = gzip with a 'BC' extra subfield (FLG.FEXTRA set) in every block header
        is_bgzf = len(head) >= 14 and head[3] & 4 and head[12:14] == b"BC"
        if not is_bgzf:
            raise InputError(path, "file is gzip- but not bgzip-compressed: recompress it with 'bgzip'")
        if tail != _BGZF_EOF:
            raise InputError(path, "bgzip file is truncated (no BGZF end-of-file marker): the copy is incomplete")
        return
    if path.name.endswith((".gz", ".bgz")):
        raise InputError(path, "file name ends in .gz but the file is not gzip/bgzip-compressed")
    if not head.startswith(b"##fileformat=VCF"):
        raise InputError(path, "not a VCF: an uncompressed VCF must start with '##fileformat=VCF'")


def _open_vcf(path: Path, samples: list[str] | None, threads: int) -> cyvcf2.VCF:
    try:
        return cyvcf2.VCF(str(path), samples=samples, threads=threads)
    except Exception as e:  # cyvcf2 raises OSError, ValueError or a bare Exception
        raise InputError(path, f"cannot read VCF header: {e}") from None


# --------------------------------------------------------------------------- streaming


ENGINES = ("auto", "text", "cyvcf2")
_BASES_B = frozenset(b.encode() for b in _BASES)
#: byte -> allele index for the vectorised text decoder: digits, '.' = missing (-1);
#: anything else is _BAD and sends the record to the slow, exact parser for its message.
_BAD = -100
_ALLELE_LUT = np.full(256, _BAD, dtype=np.int8)
_ALLELE_LUT[ord("0") : ord("9") + 1] = np.arange(10)
_ALLELE_LUT[ord(".")] = -1
_GT_SPLIT = re.compile(rb"([|/])")


@dataclass
class _State:
    """Counters and order checks of one ingest."""

    path: Path
    contig: str | None = None
    last_pos: int = 0
    n_records: int = 0
    skipped: dict = field(default_factory=lambda: dict.fromkeys(SKIP_REASONS, 0))

    def check_order(self, chrom: str, pos: int) -> None:
        """Raise unless records stay on one contig in non-decreasing position order."""
        if chrom != self.contig:
            if self.contig is not None:
                raise InputError(
                    self.path,
                    f"second contig {chrom} after {self.contig}: ingest one contig per VCF "
                    "(split it with 'bcftools view -r')",
                    record=f"{chrom}:{pos}",
                )
            self.contig = chrom
        if pos < self.last_pos:
            raise InputError(
                self.path, f"position {pos} after {self.last_pos}: VCF is not sorted", record=f"{chrom}:{pos}"
            )
        self.last_pos = pos


@dataclass
class _Chunk:
    """Candidate biallelic SNPs of one chunk of records, genotypes decoded.

    ``hap`` : ndarray, int8, shape (n_sites, n_samples, 2): allele indices
    (-1 missing, -2 absent i.e. haploid). ``phased`` : ndarray, bool, shape
    (n_sites, n_samples), True for '|'. ``clean``: the decoder already knows every
    allele is 0/1 and every genotype phased, so checks can be skipped.
    """

    where: list
    pos: list
    ids: list
    ref: list
    alt: list
    hap: np.ndarray
    phased: np.ndarray
    clean: bool = False


def _is_snp(ref, alt, bases) -> bool:
    return len(ref) == 1 and len(alt) == 1 and ref in bases and alt in bases


def _cyvcf2_chunks(path: Path, st: _State, samples: list[str] | None, chunk_size: int, threads: int):
    """Yield :class:`_Chunk` s decoded by cyvcf2 (reads anything htslib reads, BCF too)."""
    reader = _open_vcf(path, samples, threads)
    try:
        meta, gts = [], []
        for rec in tqdm(reader, desc=f"ingest {path.name}", unit=" records", disable=None):
            st.n_records += 1
            chrom, pos = rec.CHROM, rec.POS
            st.check_order(chrom, pos)
            alts = rec.ALT
            if len(alts) > 1:
                st.skipped["multiallelic"] += 1
                continue
            ref = rec.REF
            if not alts or not _is_snp(ref, alts[0], _BASES):
                st.skipped["indel_or_other"] += 1
                continue
            where = f"{chrom}:{pos}"
            try:
                g = rec.genotype
            except Exception:  # cyvcf2: "couldn't get genotypes for variant"
                g = None
            if g is None:
                raise InputError(path, "record has no GT (genotype) field", record=where)
            arr = g.array()
            if arr.shape[1] != 3:
                raise InputError(path, f"genotypes have ploidy {arr.shape[1] - 1}: they must be diploid", record=where)
            meta.append((where, pos, rec.ID or ".", ref, alts[0]))
            gts.append(arr)
            if len(meta) == chunk_size:
                yield _cyvcf2_chunk(meta, gts)
                meta, gts = [], []
        if meta:
            yield _cyvcf2_chunk(meta, gts)
    finally:
        reader.close()


def _cyvcf2_chunk(meta: list, gts: list) -> _Chunk:
    arr = np.stack(gts)  # (k, n, 3) int16: allele 1, allele 2, phased flag
    hap = np.clip(arr[:, :, :2], -2, 127).astype(np.int8)
    phased = arr[:, :, 2].astype(bool)
    return _Chunk(*map(list, zip(*meta)), hap, phased)


def _parse_gt_row(path: Path, where: str, field_: bytes, names: list[str]) -> np.ndarray:
    """Parse one record's sample columns (GT is the first FORMAT key) when the chunk
    decoder could not: other FORMAT keys after GT, or GTs not 3 bytes long.

    Returns ndarray, int8, shape (n_samples, 3): allele 1, allele 2 (-2 = haploid),
    phased flag.
    """
    cols = field_.split(b"\t")
    n = len(names)
    if len(cols) != n:
        raise InputError(
            path, f"record has {len(cols)} sample columns but the header names {n} samples", record=where
        )
    gts = [c.split(b":", 1)[0] for c in cols] if b":" in field_ else cols
    out = np.empty((n, 3), dtype=np.int8)
    if set(map(len, gts)) == {3}:  # e.g. GT:DS with one-digit alleles: still vectorised
        b = np.frombuffer(b"".join(gts), dtype=np.uint8).reshape(n, 3)
        alleles = _ALLELE_LUT[b[:, 0:3:2]]
        sep = b[:, 1]
        if (alleles != _BAD).all() and ((sep == ord("|")) | (sep == ord("/"))).all():
            out[:, :2] = alleles
            out[:, 2] = sep == ord("|")
            return out
    # exact per-sample parse: haploid or polyploid calls, multi-digit alleles, bad text
    for j, gt in enumerate(gts):
        parts = _GT_SPLIT.split(gt)
        alleles = parts[::2]
        if len(alleles) > 2:
            raise InputError(
                path,
                f"genotype {gt.decode(errors='replace')} in sample {names[j]} has ploidy {len(alleles)}: "
                "genotypes must be diploid",
                record=where,
            )
        if not all(a == b"." or a.isdigit() for a in alleles):
            raise InputError(
                path, f"cannot parse genotype '{gt.decode(errors='replace')}' in sample {names[j]}", record=where
            )
        # alleles past 127 do not fit int8; any allele > 1 is an error for a biallelic site anyway
        vals = [-1 if a == b"." else min(int(a), 127) for a in alleles]
        if len(vals) == 1:
            out[j] = (vals[0], -2, 0)
        else:
            out[j] = (vals[0], vals[1], parts[1] == b"|")
    return out


def _alt_counts(v: np.ndarray, n: int) -> np.ndarray:
    """Alt alleles per row of plain ``a|b<TAB>`` uint32 words (bit 0 of bytes 0 and 2)."""
    if n < 1 << 16:
        # one pass: allele 1 counts in the low 16 bits, allele 2 counts above them
        s = (v & 0x00010001).sum(axis=1, dtype=np.uint64)
        return (s & 0xFFFF) + (s >> 16)
    return (v & 1).sum(axis=1, dtype=np.int64) + ((v >> 16) & 1).sum(axis=1, dtype=np.int64)


def _decode_text(path: Path, where: list, fmts: list, fields: list, names: list[str], min_mac: float | None):
    """Decode the sample columns of a chunk of records, vectorised where the layout allows.

    A record whose FORMAT is exactly ``GT`` with one-character alleles has every sample
    in 4 bytes (``a|b<TAB>``), so the chunk is one (n_sites, n_samples) uint32 array
    that numpy checks and decodes at memory speed; other records go through
    :func:`_parse_gt_row`. Plain records (all alleles 0/1, all phased) whose minor-allele
    count is below ``min_mac`` are dropped before their alleles are unpacked.

    Returns
    -------
    rows : ndarray, bool, shape (n_records,)
        Records decoded (False = dropped as below ``min_mac``).
    hap : ndarray, int8, shape (rows.sum(), n_samples, 2)
    phased : ndarray, bool, shape (rows.sum(), n_samples)
    clean : bool
        Every decoded allele is 0/1 and every genotype phased.
    """
    n, k = len(names), len(fields)
    width = 4 * n - 1
    fast = np.fromiter((f == b"GT" and len(g) == width for f, g in zip(fmts, fields)), dtype=bool, count=k)
    fi = np.flatnonzero(fast)
    keep = np.ones(k, dtype=bool)
    plain = np.zeros(k, dtype=bool)
    at = np.full(k, -1)  # record -> row of b
    if len(fi):
        b = np.frombuffer(b"\t".join([fields[i] for i in fi]) + b"\t", dtype=np.uint8).reshape(len(fi), n, 4)
        v = b.view("<u4").reshape(len(fi), n)
        at[fi] = np.arange(len(fi))
        # '0|0\t' .. '1|1\t' differ only in bit 0 of bytes 0 and 2 ('0' = 0x30, '1' = 0x31)
        p = ((v & 0xFFFEFFFE) == int.from_bytes(b"0|0\t", "little")).all(axis=1)
        plain[fi] = p
        if min_mac is not None and p.any():
            ac = _alt_counts(v[p], n)
            keep[fi[p][np.minimum(ac, 2 * n - ac) < min_mac]] = False
    rows = np.flatnonzero(keep)
    hap = np.empty((len(rows), n, 2), dtype=np.int8)
    phased = np.ones((len(rows), n), dtype=bool)
    sel = plain[rows]
    if sel.any():
        hap[sel] = b[at[rows[sel]]][:, :, 0:3:2] - ord("0")
    slow = list(np.flatnonzero(~fast[rows]))
    other = np.flatnonzero(fast[rows] & ~sel)
    if len(other):
        br = b[at[rows[other]]]
        alleles = _ALLELE_LUT[br[:, :, 0:3:2]]
        sep = br[:, :, 1]
        ph = sep == ord("|")
        ok = (
            (br[:, :, 3] == ord("\t")).all(axis=1)
            & (ph | (sep == ord("/"))).all(axis=1)
            & (alleles != _BAD).all(axis=(1, 2))
        )
        hap[other[ok]] = alleles[ok]
        phased[other[ok]] = ph[ok]
        slow += list(other[~ok])
    for j in slow:
        row = _parse_gt_row(path, where[rows[j]], fields[rows[j]], names)
        hap[j] = row[:, :2]
        phased[j] = row[:, 2].astype(bool)
    return keep, hap, phased, bool(sel.all())


def _text_chunks(
    path: Path, st: _State, names: list[str], keep: np.ndarray | None, chunk_size: int, min_maf: float
):
    """Yield :class:`_Chunk` s from a VCF text file (bgzipped or plain) parsed with numpy.

    ``keep`` : ndarray, int, indices of the VCF samples to keep (None = all).
    Sites that are certainly below ``min_maf`` are dropped here, without decoding.
    """
    where, pos_l, ids, refs, alts, fmts, fields = [], [], [], [], [], [], []

    def chunk():
        rows, hap, phased, clean = _decode_text(path, where, fmts, fields, names, min_mac if prefilter else None)
        if keep is not None:
            hap, phased = hap[:, keep], phased[:, keep]
        meta = [where, pos_l, ids, refs, alts]
        if not rows.all():
            st.skipped["below_maf"] += int((~rows).sum())
            meta = [[x for x, r in zip(m, rows) if r] for m in meta]
        return _Chunk(*meta, hap, phased, clean)

    n_cols = 9 + len(names)
    # Rare sites are dropped by _decode_text before unpacking (an exact shortcut of
    # the MAF filter in vcf_to_hdf5); not with a sample subset, where AF is over the
    # kept samples only.
    prefilter = keep is None and min_maf > 0
    min_mac = min_maf * 2 * len(names)
    fh = pysam.BGZFile(str(path), "rb")
    with contextlib.ExitStack() as stack:
        # pysam ends iteration quietly on a corrupt block and reports it at close
        stack.callback(_close_bgzf, fh, path, st)
        for line in tqdm(fh, desc=f"ingest {path.name}", unit=" lines", disable=None):
            if line[:1] == b"#" or not line:
                continue
            parts = line.split(b"\t", 9)
            chrom = parts[0].decode(errors="replace")
            if len(parts) < 10:
                raise InputError(
                    path,
                    f"record has {len(parts)} tab-separated columns, expected {n_cols}",
                    record=f"{chrom}:{parts[1].decode(errors='replace') if len(parts) > 1 else '?'}",
                )
            try:
                pos = int(parts[1])
            except ValueError:
                bad = parts[1].decode(errors="replace")
                raise InputError(path, f"POS '{bad}' is not an integer", record=chrom) from None
            st.n_records += 1
            st.check_order(chrom, pos)
            alt = parts[4]
            if b"," in alt:
                st.skipped["multiallelic"] += 1
                continue
            ref = parts[3]
            if not _is_snp(ref, alt, _BASES_B):
                st.skipped["indel_or_other"] += 1
                continue
            fmt = parts[8]
            if fmt != b"GT" and not fmt.startswith(b"GT:"):
                raise InputError(path, "record has no GT (genotype) field first in FORMAT", record=f"{chrom}:{pos}")
            gt = parts[9].rstrip(b"\r\n")
            where.append(f"{chrom}:{pos}")
            pos_l.append(pos)
            ids.append(parts[2].decode())
            refs.append(ref.decode())
            alts.append(alt.decode())
            fmts.append(fmt)
            fields.append(gt)
            if len(where) == chunk_size:
                yield chunk()
                where, pos_l, ids, refs, alts, fmts, fields = [], [], [], [], [], [], []
    if where:
        yield chunk()


def _close_bgzf(fh, path: Path, st: _State) -> None:
    try:
        fh.close()
    except OSError:
        at = f" after record {st.contig}:{st.last_pos}" if st.contig else ""
        problem = f"corrupt bgzip data{at}: decompression failed (re-download or re-compress the file)"
        raise InputError(path, problem) from None


def _is_text_vcf(path: Path) -> bool:
    """True for VCF text (bgzipped or plain), False for BCF."""
    with pysam.BGZFile(str(path), "rb") as fh:
        return fh.read(len(b"##fileformat=VCF")) == b"##fileformat=VCF"


def _gt_string(a: int, b: int, phased: bool) -> str:
    def allele(x):
        return "." if x < 0 else str(x)

    return f"{allele(a)}{'|' if phased else '/'}{allele(b)}"


def _check_genotypes(path: Path, st: _State, ch: _Chunk, names: list[str], on_unphased: str) -> np.ndarray:
    """Validate a chunk's genotypes (diploid, biallelic, phased, called); return the sites to keep.

    Returns ndarray, bool, shape (n_sites,).
    """
    keep = np.ones(len(ch.hap), dtype=bool)
    if ch.clean:
        return keep
    hap = ch.hap
    lo, hi = int(hap.min()), int(hap.max())
    if lo >= 0 and hi <= 1 and ch.phased.all():
        return keep
    if lo == -2:
        i, j = np.argwhere((hap == -2).any(axis=2))[0]
        raise InputError(path, f"haploid genotype in sample {names[j]}: genotypes must be diploid", record=ch.where[i])
    if hi > 1:
        i, j = np.argwhere((hap > 1).any(axis=2))[0]
        raise InputError(
            path,
            f"allele {int(hap[i, j].max())} in sample {names[j]} but the site has one ALT allele",
            record=ch.where[i],
        )
    missing_gt = (hap < 0).any(axis=2)  # (n_sites, n_samples)
    unphased_gt = ~ch.phased
    missing = missing_gt.any(axis=1)
    unphased = unphased_gt.any(axis=1) & ~missing
    if on_unphased == "error":
        i, j = np.argwhere(missing_gt | unphased_gt)[0]
        gt = _gt_string(int(hap[i, j, 0]), int(hap[i, j, 1]), bool(ch.phased[i, j]))
        what = "missing" if missing_gt[i, j] else "unphased"
        raise InputError(
            path,
            f"{what} genotype {gt} in sample {names[j]}: the panel must be fully phased and called "
            "(phase/impute it first, or set on_unphased: drop_site)",
            record=ch.where[i],
        )
    st.skipped["missing"] += int(missing.sum())
    st.skipped["unphased"] += int(unphased.sum())
    return ~(missing | unphased)


class _HapWriter:
    """Append (n_sites, n_samples, 2) int8 blocks to a resizable, compressed HDF5 dataset.

    With gzip, whole HDF5 chunks are deflated by a worker thread (zlib releases the
    GIL) and stored with ``write_direct_chunk``, so compression runs on a second core
    while the next VCF chunk is parsed; this is byte-for-byte what HDF5's own deflate
    filter would store. Other filters go through h5py's normal (serial) write.
    """

    #: compressed chunks waiting to be stored; bounds the memory held by the worker
    MAX_QUEUED = 4
    #: h5py's default gzip level, used when compression_opts is None
    DEFAULT_GZIP_LEVEL = 4

    def __init__(self, h5: h5py.File, n_samples: int, compression: str | None, compression_opts):
        self.rows = max(1, _HAP_CHUNK_BYTES // (2 * max(n_samples, 1)))
        self.ds = h5.create_dataset(
            "calldata/HAP",
            shape=(0, n_samples, 2),
            maxshape=(None, n_samples, 2),
            dtype="i1",
            chunks=(self.rows, n_samples, 2),
            compression=compression,
            # lzf and None take no level
            compression_opts=compression_opts if compression == "gzip" else None,
        )
        self.direct = compression == "gzip"
        self.level = self.DEFAULT_GZIP_LEVEL if compression_opts is None else int(compression_opts)
        self.pending: list[np.ndarray] = []
        self.n_pending = 0
        self.n_submitted = 0
        self.futures: deque = deque()
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hap-deflate") if self.direct else None

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        elif self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)

    def append(self, hap: np.ndarray) -> None:
        if not self.direct:
            n = self.ds.shape[0]
            self.ds.resize(n + len(hap), axis=0)
            self.ds[n:] = hap
            return
        self.pending.append(hap)
        self.n_pending += len(hap)
        if self.n_pending >= self.rows:
            buf = np.concatenate(self.pending)
            full = len(buf) - len(buf) % self.rows
            for start in range(0, full, self.rows):
                self._submit(buf[start : start + self.rows])
            rest = buf[full:]
            self.pending, self.n_pending = ([rest] if len(rest) else []), len(rest)
        self._store(block=False)

    def close(self) -> None:
        if not self.direct:
            return
        if self.n_pending:
            self._submit(np.concatenate(self.pending))
            self.pending, self.n_pending = [], 0
        self._store(block=True)
        self.pool.shutdown(wait=True)

    def _submit(self, block: np.ndarray) -> None:
        n = len(block)
        if n < self.rows:  # HDF5 stores edge chunks full size; the padding is never read
            block = np.concatenate([block, np.zeros((self.rows - n, *block.shape[1:]), dtype=block.dtype)])
        data = np.ascontiguousarray(block, dtype=np.int8)
        self.futures.append((self.n_submitted, n, self.pool.submit(zlib.compress, memoryview(data), self.level)))
        self.n_submitted += n

    def _store(self, block: bool) -> None:
        while self.futures and (block or self.futures[0][2].done() or len(self.futures) > self.MAX_QUEUED):
            offset, n, fut = self.futures.popleft()
            payload = fut.result()
            if self.ds.shape[0] < offset + n:
                self.ds.resize(offset + n, axis=0)
            self.ds.id.write_direct_chunk((offset, 0, 0), payload)


def vcf_to_hdf5(
    vcf: str | os.PathLike,
    panel: str | os.PathLike,
    out_h5: str | os.PathLike,
    *,
    min_maf: float = 0.01,
    on_unphased: str = "error",
    chunk_size: int = 2000,
    panel_subset: bool = False,
    engine: str = "auto",
    threads: int = 2,
    compression: str | None = "gzip",
    compression_opts: int | None = 1,
) -> dict:
    """Convert a phased VCF of one contig into the HDF5 panel layout (format v1).

    Parameters
    ----------
    vcf : path-like
        bgzipped (``.vcf.gz``) or plain VCF (or BCF), one contig, sorted, with GT.
    panel : path-like
        Population panel file (see :func:`read_population_panel`).
    out_h5 : path-like
        Output HDF5 file, laid out as in :mod:`omicslm.impute.layout`; written atomically.
    min_maf : float
        Keep a biallelic SNP when ``min(AF, 1 - AF) >= min_maf``, AF over the kept
        samples' haplotypes.
    on_unphased : {"error", "drop_site"}
        What to do with an unphased or missing genotype: stop with an
        :class:`InputError`, or drop the site (counted as ``unphased`` / ``missing``).
    chunk_size : int
        VCF records decoded per chunk; memory is bounded by this, not by the file
        (apart from the int8 output, appended to a chunked HDF5 dataset).
    panel_subset : bool
        False: every panel sample must be in the VCF. True: the panel may list more
        samples than the VCF (e.g. the 2,535-sample 1000 Genomes panel for a subset).
    engine : {"auto", "text", "cyvcf2"}
        Record decoder. "cyvcf2" iterates records with cyvcf2 (any htslib input);
        "text" splits VCF text lines and decodes genotypes of a whole chunk with numpy,
        several times faster on wide panels; "auto" = "text" for VCF text, "cyvcf2"
        for BCF. Both give identical output.
    threads : int
        htslib threads for bgzip decompression in the cyvcf2 engine.
    compression, compression_opts
        h5py filter for ``calldata/HAP`` (gzip level 1: fast, and 0/1 bytes shrink a lot).

    Returns
    -------
    dict
        ``n_records`` (VCF records read), ``n_kept``, ``n_samples``, ``skipped``
        (reason -> count, reasons in :data:`SKIP_REASONS`), ``seconds``.

    Raises
    ------
    InputError
        Unreadable, truncated or empty VCF; no GT; unsorted positions, duplicate kept
        positions or several contigs; haploid, unphased or missing genotypes (with
        ``on_unphased="error"``); samples missing from the VCF or the panel; nothing
        left after filtering.
    """
    t0 = time.perf_counter()
    if on_unphased not in ON_UNPHASED:
        raise ValueError(f"on_unphased must be one of {ON_UNPHASED}, got {on_unphased!r}")
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
    if not 0 <= min_maf <= 0.5:
        raise ValueError(f"min_maf must be in [0, 0.5], got {min_maf}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    path = Path(vcf)
    pan = read_population_panel(panel)
    _check_vcf_file(path)

    header = _open_vcf(path, None, 1)
    try:
        header.get_header_type("GT")
    except KeyError:
        raise InputError(path, "VCF header declares no GT (genotype) FORMAT field") from None
    finally:
        vcf_samples = list(header.samples)
        header.close()
    kept, keep_idx = _match_samples(path, panel, pan, vcf_samples, panel_subset)
    is_text = _is_text_vcf(path)
    if engine == "auto":
        engine = "text" if is_text else "cyvcf2"
    elif engine == "text" and not is_text:
        raise ValueError(f"{path} is not VCF text (BCF?): use engine='cyvcf2' or 'auto'")
    pan = pan.set_index("sample").loc[kept]
    populations = np.array(sorted(pan["pop"].unique()), dtype=object)
    pop_idx = np.searchsorted(populations, pan["pop"].to_numpy()).astype(np.int16)
    # per-population sums with add.reduceat over samples grouped by population: a BLAS
    # matmul would leave OpenBLAS threads spinning on the core the parser needs
    by_pop = np.argsort(pop_idx, kind="stable")
    pop_start = np.searchsorted(pop_idx[by_pop], np.arange(len(populations)))
    hap_per_pop = 2.0 * np.bincount(pop_idx, minlength=len(populations))
    if (by_pop == np.arange(len(kept))).all():
        by_pop = slice(None)  # already grouped: no gather needed
    n_samples = len(kept)

    st = _State(path=path)
    if engine == "text":
        subset = None if n_samples == len(vcf_samples) else keep_idx
        chunks = _text_chunks(path, st, vcf_samples, subset, chunk_size, min_maf)
    else:
        subset = None if n_samples == len(vcf_samples) else kept
        chunks = _cyvcf2_chunks(path, st, subset, chunk_size, threads)

    min_mac = min_maf * 2 * n_samples
    sites = {k: [] for k in ("pos", "ids", "ref", "alt", "type", "af", "af_pop", "geno")}
    last_kept, n_kept = 0, 0
    with atomic_path(out_h5) as tmp, h5py.File(tmp, "w") as h5:
        with _HapWriter(h5, n_samples, compression, compression_opts) as writer:
            for ch in _reader_errors(chunks, path, st):
                ok = _check_genotypes(path, st, ch, kept, on_unphased)
                counts = ch.hap[:, :, 0] + ch.hap[:, :, 1]  # (k, n) alt alleles per genotype
                ac = counts.sum(axis=1, dtype=np.int64)
                af = ac / (2.0 * n_samples)
                # minor-allele count vs threshold: exact and symmetric in REF/ALT, unlike 1 - AF
                take = ok & (np.minimum(ac, 2 * n_samples - ac) >= min_mac)
                st.skipped["below_maf"] += int((ok & ~take).sum())
                idx = np.flatnonzero(take)
                if not len(idx):
                    continue
                for i in idx:
                    p = ch.pos[i]
                    if p == last_kept:
                        raise InputError(
                            path,
                            f"duplicate position {p}: two biallelic SNPs at one position "
                            "(merge them with 'bcftools norm -m+', or remove one)",
                            record=ch.where[i],
                        )
                    last_kept = p
                    sites["pos"].append(p)
                    sites["ids"].append(ch.ids[i])
                    sites["ref"].append(ch.ref[i])
                    sites["alt"].append(ch.alt[i])
                    sites["type"].append(_TYPE_INDEX[f"{ch.ref[i]}>{ch.alt[i]}"])
                counts = counts[idx]
                sites["af"].append(af[idx].astype(np.float32))
                pop_ac = np.add.reduceat(counts[:, by_pop], pop_start, axis=1, dtype=np.int64)
                sites["af_pop"].append((pop_ac / hap_per_pop).astype(np.float32))
                het = np.count_nonzero(counts == 1, axis=1)
                hom_alt = np.count_nonzero(counts == 2, axis=1)
                sites["geno"].append(np.stack([n_samples - het - hom_alt, het, hom_alt], axis=1) / n_samples)
                writer.append(ch.hap[idx])
                n_kept += len(idx)

        if st.n_records == 0:
            raise InputError(path, "VCF has a header but no records")
        if n_kept == 0:
            raise InputError(path, f"no biallelic SNP with MAF >= {min_maf:g} among {st.n_records} records")
        h5["variants/POS"] = np.array(sites["pos"], dtype=np.int64)
        h5["variants/REF"] = np.array(sites["ref"], dtype="S1")
        h5["variants/ALT"] = np.array(sites["alt"], dtype="S1")
        h5["variants/ID"] = np.array(sites["ids"], dtype="S")
        h5["variants/TYPE"] = np.array(sites["type"], dtype=np.int8)
        h5["variants/AF"] = np.concatenate(sites["af"])
        h5["variants/AF_POP"] = np.concatenate(sites["af_pop"]).astype(np.float32)
        h5["variants/GENO_FREQ"] = np.concatenate(sites["geno"]).astype(np.float32)
        h5["samples/ID"] = np.array(kept, dtype="S")
        h5["samples/POP"] = pop_idx
        h5["samples/SUPER_POP"] = pan["super_pop"].to_numpy().astype("S")
        h5["populations/NAME"] = populations.astype("S")
        h5.attrs["format_version"] = layout.FORMAT_VERSION
        h5.attrs["contig"] = st.contig
        h5.attrs["source_vcf"] = str(path)
        h5.attrs["min_maf"] = float(min_maf)
        h5.attrs["type_names"] = layout.TYPE_NAMES
        for reason, n in st.skipped.items():
            h5.attrs[f"n_skipped_{reason}"] = n

    seconds = time.perf_counter() - t0
    log.info(
        "%s: kept %d of %d records (%d samples, contig %s) in %.1f s; skipped: %s",
        path,
        n_kept,
        st.n_records,
        n_samples,
        st.contig,
        seconds,
        ", ".join(f"{k} {v}" for k, v in st.skipped.items()),
    )
    return {
        "n_records": st.n_records,
        "n_kept": n_kept,
        "n_samples": n_samples,
        "skipped": dict(st.skipped),
        "seconds": seconds,
    }


def _reader_errors(chunks, path: Path, st: _State):
    """Re-raise errors of the VCF reader (htslib, zlib, malformed text) as InputError."""
    it = iter(chunks)
    while True:
        try:
            ch = next(it)
        except StopIteration:
            return
        except InputError:
            raise
        except Exception as e:  # cyvcf2 raises bare Exception; htslib/zlib OSError/ValueError
            at = f" after record {st.contig}:{st.last_pos}" if st.contig else ""
            raise InputError(path, f"cannot parse VCF{at}: {e}") from None
        yield ch


def _match_samples(path: Path, panel, pan: pd.DataFrame, vcf_samples: list[str], panel_subset: bool):
    """Kept samples (VCF order) and their indices in the VCF; raise on mismatches."""
    in_panel = set(pan["sample"])
    keep_idx = np.array([i for i, s in enumerate(vcf_samples) if s in in_panel], dtype=np.int64)
    kept = [vcf_samples[i] for i in keep_idx]
    if not panel_subset:
        in_vcf = set(vcf_samples)
        absent = [s for s in pan["sample"] if s not in in_vcf]
        if absent:
            raise InputError(
                path,
                f"{len(absent)} sample(s) of panel file {panel} not in the VCF: {', '.join(absent[:10])}"
                + (" ..." if len(absent) > 10 else "")
                + " (pass a panel of exactly the VCF's samples, or panel_subset=True)",
            )
    if not kept:
        raise InputError(path, f"none of the VCF's {len(vcf_samples)} samples is in the panel file {panel}")
    if len(kept) < len(vcf_samples):
        log.info("%s: ignoring %d VCF sample(s) not in the panel file", path, len(vcf_samples) - len(kept))
    return kept, keep_idx


# --------------------------------------------------------------------------- windows


def write_windows(h5: str | os.PathLike, out_tsv: str | os.PathLike, *, sites: int, overlap: int) -> pd.DataFrame:
    """Tile an ingested panel's sites into windows of ``sites`` consecutive sites.

    Consecutive windows share ``overlap`` sites (step ``sites - overlap``); the last
    window is moved back to end at the last site, so every site is covered and every
    window has exactly ``sites`` sites (one window of all sites when the panel has
    fewer than ``sites``).

    Parameters
    ----------
    h5 : path-like
        Ingested panel (:mod:`omicslm.impute.layout`).
    out_tsv : path-like
        Tab-separated output, written atomically.
    sites, overlap : int
        Window length and overlap in sites; ``0 <= overlap < sites``.

    Returns
    -------
    pandas.DataFrame
        One row per window: ``window, start_idx, end_idx`` (exclusive), ``start_pos,
        end_pos`` (1-based, inclusive), ``n_sites``.
    """
    if sites < 1 or not 0 <= overlap < sites:
        raise ValueError(f"need sites >= 1 and 0 <= overlap < sites, got sites={sites}, overlap={overlap}")
    layout.check_h5(h5, required=("variants/POS",))
    with h5py.File(h5, "r") as f:
        pos = f["variants/POS"][:]
    n = len(pos)
    if n == 0:
        raise InputError(h5, "panel has no sites to tile into windows")
    if n <= sites:
        starts = np.array([0])
    else:
        step = sites - overlap
        starts = np.arange(0, n - sites + 1, step)
        if starts[-1] + sites < n:
            starts = np.append(starts, n - sites)
    ends = np.minimum(starts + sites, n)
    df = pd.DataFrame(
        {
            "window": np.arange(len(starts)),
            "start_idx": starts,
            "end_idx": ends,
            "start_pos": pos[starts],
            "end_pos": pos[ends - 1],
            "n_sites": ends - starts,
        }
    )
    with atomic_open(out_tsv, "w") as fh:
        df.to_csv(fh, sep="\t", index=False)
    log.info("%s: %d windows of %d sites (overlap %d) over %d sites", out_tsv, len(df), sites, overlap, n)
    return df
