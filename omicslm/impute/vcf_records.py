"""Decode VCF records for ingest: file checks, the two record decoders, genotype checks.

Split out of :mod:`omicslm.impute.ingest` (which drives them and writes the HDF5).
Two decoders give identical output. cyvcf2 (htslib) reads the header always, and the
records of BCF or when asked. For VCF text the default decoder splits each line in
Python and decodes the genotypes of a whole chunk at once with numpy: a phased
biallelic sample is always the 4 bytes ``a|b<TAB>``, so a chunk is one uint32 matrix.
Records that do not fit the 4-byte layout take an exact per-sample parser. Every
problem is raised as :class:`omicslm.errors.InputError` naming file, record and problem.
"""

from __future__ import annotations

import contextlib
import re
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import cyvcf2
import numpy as np
import pysam
from tqdm import tqdm

from omicslm.errors import InputError
from omicslm.impute import layout

#: Reasons a VCF record is not ingested, in the order they are tested.
SKIP_REASONS = ("multiallelic", "indel_or_other", "missing", "unphased", "below_maf")
_GZIP_MAGIC = b"\x1f\x8b"
#: The empty BGZF block every complete bgzip file ends with (SAM/BAM spec, section 4.1.2).
_BGZF_EOF = bytes.fromhex("1f8b08040000000000ff0600424302001b0003000000000000000000")
_BASES = frozenset("ACGT")


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


