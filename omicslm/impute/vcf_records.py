"""Read the biallelic SNPs (and, when asked, indels) of a phased VCF in decoded, checked chunks.

:func:`iter_vcf_chunks` streams a VCF (or BCF) of one contig and yields
:class:`VcfChunk` s in the manner of scikit-allel's ``iter_vcf_chunks``: positions,
alleles and int8 haplotypes of the biallelic SNPs whose genotypes are diploid, phased and
called, optionally above a minor-allele frequency, with the records skipped in the chunk
counted by reason (:data:`SKIP_REASONS`). :func:`omicslm.impute.ingest.vcf_to_hdf5`
writes these chunks to the HDF5 panel layout.

Two engines give identical output. cyvcf2 (htslib) reads the header always, and the
records of BCF or when asked. For VCF text the default engine splits each line in Python
and decodes the genotypes of a whole chunk at once with numpy (the decoders are in
:mod:`omicslm.impute.vcf_engines`). Every problem is raised as
:class:`omicslm.errors.InputError` naming file, record and problem.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import pysam

from omicslm.errors import InputError
from omicslm.impute.vcf_engines import SKIP_REASONS, DecodedChunk, ReadState, cyvcf2_chunks, open_vcf, text_chunks

__all__ = [
    "ENGINES", "ON_UNPHASED", "SKIP_REASONS", "VcfChunk", "check_read_options", "iter_vcf_chunks", "read_vcf_samples",
]

#: Record decoders of :func:`iter_vcf_chunks`.
ENGINES = ("auto", "text", "cyvcf2")
#: What :func:`iter_vcf_chunks` does with an unphased or missing genotype.
ON_UNPHASED = ("error", "drop_site")
_GZIP_MAGIC = b"\x1f\x8b"
#: The empty BGZF block every complete bgzip file ends with (SAM/BAM spec, section 4.1.2).
_BGZF_EOF = bytes.fromhex("1f8b08040000000000ff0600424302001b0003000000000000000000")


# --------------------------------------------------------------------------- public reader


@dataclass(frozen=True, eq=False)
class VcfChunk:
    """The kept sites of one chunk of VCF records.

    Attributes
    ----------
    contig : str or None
        CHROM of the file's records (None only when it has none).
    pos : ndarray, int64, shape (n,)
        1-based positions, non-decreasing (also across chunks).
    id : ndarray, str, shape (n,)
        ID column (``"."`` when absent).
    ref, alt : ndarray, str, shape (n,)
        REF and ALT alleles: one of ``ACGT`` each, or (``indels=True``) strings of ``ACGT``.
    gt : ndarray, int8, shape (n, n_samples, 2)
        Phased alleles (0 = REF, 1 = ALT) of the selected samples, in the VCF's order.
    ac : ndarray, int64, shape (n,)
        ALT-allele count over the selected samples' ``2 * n_samples`` haplotypes.
    n_records : int
        VCF records read for this chunk: ``n + sum(skipped.values())``.
    skipped : dict
        Reason (:data:`SKIP_REASONS`) -> records of this chunk skipped for it.
    """

    contig: str | None
    pos: np.ndarray
    id: np.ndarray
    ref: np.ndarray
    alt: np.ndarray
    gt: np.ndarray
    ac: np.ndarray
    n_records: int
    skipped: dict


def read_vcf_samples(path: str | os.PathLike) -> list[str]:
    """Check a VCF/BCF file and its header (which must declare GT); return its sample names.

    Raises
    ------
    InputError
        Missing, empty, non-VCF, plain-gzip or truncated bgzip file; unreadable header;
        no GT FORMAT field declared.
    """
    path = Path(path)
    _check_vcf_file(path)
    header = open_vcf(path, None, 1)
    try:
        header.get_header_type("GT")
    except KeyError:
        raise InputError(path, "VCF header declares no GT (genotype) FORMAT field") from None
    finally:
        vcf_samples = list(header.samples)
        header.close()
    return vcf_samples


def iter_vcf_chunks(
    path: str | os.PathLike,
    *,
    samples: Sequence[str] | None = None,
    chunk_length: int = 2000,
    engine: str = "auto",
    on_unphased: str = "error",
    min_maf: float = 0.0,
    threads: int = 2,
    indels: bool = False,
) -> Iterator[VcfChunk]:
    """Stream the biallelic SNPs of a sorted, phased, one-contig VCF in checked chunks.

    The file, its header and the options are checked when this is called; records are
    read as the chunks are iterated. The skip counts of all chunks add up to the file's:
    a chunk may keep no site, and records skipped after the last full chunk come in a
    final chunk with ``n = 0``.

    Parameters
    ----------
    path : path-like
        bgzipped (``.vcf.gz``) or plain VCF, or BCF, with GT first in FORMAT.
    samples : sequence of str, optional
        Samples to read (default: all); ``gt`` columns follow the VCF's order.
    chunk_length : int
        Biallelic SNP records decoded per chunk (memory is bounded by this).
    engine : {"auto", "text", "cyvcf2"}
        "text" splits VCF text lines and decodes a chunk's genotypes with numpy (several
        times faster on wide panels); "cyvcf2" iterates records with cyvcf2 (any htslib
        input); "auto" = "text" for VCF text, "cyvcf2" for BCF.
    on_unphased : {"error", "drop_site"}
        Unphased or missing genotype: raise, or skip the site (``unphased`` / ``missing``).
    min_maf : float
        Skip sites with ``min(AF, 1 - AF) < min_maf`` (``below_maf``), AF over the selected
        samples, compared as an exact minor-allele count.
    threads : int
        htslib decompression threads of the cyvcf2 engine.
    indels : bool
        Also keep biallelic indels whose alleles are spelled in ``ACGT`` (no symbolic ``<DEL>``, ``*`` or N).
        Positions may then repeat (a SNP and an indel at one position); the caller decides what to keep.

    Yields
    ------
    VcfChunk

    Raises
    ------
    InputError
        Unreadable, truncated or corrupt file; no GT; a sample not in the VCF; unsorted
        positions or several contigs; haploid genotypes or alleles > 1; unphased or
        missing genotypes (``on_unphased="error"``); malformed records.
    """
    check_read_options(on_unphased=on_unphased, engine=engine, min_maf=min_maf, chunk_length=chunk_length)
    path = Path(path)
    vcf_samples = read_vcf_samples(path)
    names, keep_idx = _select_samples(path, vcf_samples, samples)
    is_text = _is_text_vcf(path)
    if engine == "auto":
        engine = "text" if is_text else "cyvcf2"
    elif engine == "text" and not is_text:
        raise ValueError(f"{path} is not VCF text (BCF?): use engine='cyvcf2' or 'auto'")
    st = ReadState(path=path)
    if engine == "text":
        raw = text_chunks(path, st, vcf_samples, keep_idx, chunk_length, min_maf, indels)
    else:
        raw = cyvcf2_chunks(path, st, None if keep_idx is None else names, chunk_length, threads, indels)
    return _checked_chunks(raw, st, names, on_unphased, min_maf)


def check_read_options(*, on_unphased: str, engine: str, min_maf: float, chunk_length: int,
                       chunk_arg: str = "chunk_length") -> None:
    """ValueError unless these :func:`iter_vcf_chunks` options are valid.

    ``chunk_arg`` is the caller's name for ``chunk_length``, used in the message.
    """
    if on_unphased not in ON_UNPHASED:
        raise ValueError(f"on_unphased must be one of {ON_UNPHASED}, got {on_unphased!r}")
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
    if not 0 <= min_maf <= 0.5:
        raise ValueError(f"min_maf must be in [0, 0.5], got {min_maf}")
    if chunk_length < 1:
        raise ValueError(f"{chunk_arg} must be >= 1, got {chunk_length}")


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


def _is_text_vcf(path: Path) -> bool:
    """True for VCF text (bgzipped or plain), False for BCF."""
    with pysam.BGZFile(str(path), "rb") as fh:
        return fh.read(len(b"##fileformat=VCF")) == b"##fileformat=VCF"


def _select_samples(path: Path, vcf_samples: list[str], samples: Sequence[str] | None):
    """Names (VCF order) of the selected samples and their VCF indices (None = all)."""
    if samples is None:
        return vcf_samples, None
    wanted = set(samples)
    absent = sorted(wanted - set(vcf_samples))
    if absent:
        raise InputError(path, f"{len(absent)} requested sample(s) not in the VCF: {', '.join(absent[:10])}")
    keep_idx = np.array([i for i, s in enumerate(vcf_samples) if s in wanted], dtype=np.int64)
    if len(keep_idx) == len(vcf_samples):
        return vcf_samples, None
    return [vcf_samples[i] for i in keep_idx], keep_idx


# --------------------------------------------------------------------------- checks and filter


def _reader_errors(chunks, path: Path, st: ReadState):
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


def _checked_chunks(raw, st: ReadState, names: list[str], on_unphased: str, min_maf: float) -> Iterator[VcfChunk]:
    """Check the genotypes of decoded chunks, drop rare sites, yield :class:`VcfChunk` s."""
    n = len(names)
    min_mac = min_maf * 2 * n
    for ch in _reader_errors(raw, st.path, st):
        ok = _check_genotypes(st.path, st, ch, names, on_unphased)
        ac = (ch.hap[:, :, 0] + ch.hap[:, :, 1]).sum(axis=1, dtype=np.int64)
        # minor-allele count vs threshold: exact and symmetric in REF/ALT, unlike 1 - AF
        take = ok & (np.minimum(ac, 2 * n - ac) >= min_mac)
        st.skipped["below_maf"] += int((ok & ~take).sum())
        idx = np.flatnonzero(take)
        n_records, skipped = st.counts_since_last()
        yield VcfChunk(
            contig=st.contig,
            pos=np.array(ch.pos, dtype=np.int64)[idx],
            id=np.array([ch.ids[i] for i in idx], dtype=str),
            ref=np.array(ch.ref, dtype=str)[idx],
            alt=np.array(ch.alt, dtype=str)[idx],
            gt=ch.hap[idx],
            ac=ac[idx],
            n_records=n_records,
            skipped=skipped,
        )
    n_records, skipped = st.counts_since_last()
    if n_records:  # records skipped after the last chunk
        empty = np.empty(0, dtype="U1")
        gt = np.empty((0, n, 2), dtype=np.int8)
        yield VcfChunk(st.contig, np.empty(0, dtype=np.int64), empty, empty, empty, gt,
                       np.empty(0, dtype=np.int64), n_records, skipped)


def _gt_string(a: int, b: int, phased: bool) -> str:
    def allele(x):
        return "." if x < 0 else str(x)

    return f"{allele(a)}{'|' if phased else '/'}{allele(b)}"


def _check_genotypes(path: Path, st: ReadState, ch: DecodedChunk, names: list[str], on_unphased: str) -> np.ndarray:
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
