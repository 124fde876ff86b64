"""Write phased haplotypes and imputed dosages as bgzipped, tabix-indexed VCF.

Every VCF this workflow hands to a peer tool (Beagle, minimac4) or to a person
(imputed output) is written here, so all methods see byte-identical inputs.
"""

from __future__ import annotations

import datetime
import os
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pysam
from numba import njit, prange

from omicslm.io.atomic import atomic_indexed
from omicslm.io.bgzf import ParallelBGZFWriter
from omicslm.io.threads import set_numba_threads

_GT_PHASED = np.array(["0|0", "0|1", "1|0", "1|1"])
_GT_UNPHASED = np.array(["0/0", "0/1", "0/1", "1/1"])  # what an array genotype call gives: no haplotype order


def _format_info(info: Mapping[str, np.ndarray] | None, i: int) -> str:
    if not info:
        return "."
    parts = []
    for key, values in info.items():
        v = values[i]
        if isinstance(v, (bool, np.bool_)):  # a Flag: the key alone where true, nothing where false
            if v:
                parts.append(key)
        else:
            parts.append(f"{key}={v:.4g}" if isinstance(v, (float, np.floating)) else f"{key}={v}")
    return ";".join(parts) or "."


def write_vcf(
    path: str | os.PathLike,
    *,
    contig: str,
    positions: np.ndarray,
    ref: Sequence[str],
    alt: Sequence[str],
    samples: Sequence[str],
    haplotypes: np.ndarray | None = None,
    dosages: np.ndarray | None = None,
    genotype_probs: np.ndarray | None = None,
    hap_dosages: np.ndarray | None = None,
    info: Mapping[str, np.ndarray] | None = None,
    info_header: Sequence[str] = (),
    source: str = "omicslm",
    phased: bool = True,
    threads: int = 1,
) -> Path:
    """Write a bgzipped VCF with a tabix index (``path`` + ``.tbi``), atomically.

    Parameters
    ----------
    positions : ndarray, int, shape (n_variants,)
        1-based positions, strictly increasing.
    ref, alt : sequence of str, length n_variants
    samples : sequence of str, length n_samples
    haplotypes : ndarray, int8, shape (n_variants, n_samples, 2), optional
        Alleles (0/1); written as ``GT`` with ``|``, or as an unphased call (``0/1``) when
        ``phased`` is false (the haplotype order is then lost, as in array genotypes).
    dosages : ndarray, float, shape (n_variants, n_samples), optional
        Expected alt-allele count in [0, 2]; written as ``DS``.
    genotype_probs : ndarray, float, shape (n_variants, n_samples, 3), optional
        P(0/0), P(0/1), P(1/1); written as ``GP``.
    hap_dosages : ndarray, float, shape (n_variants, n_samples, 2), optional
        ALT probability of each haplotype, in GT's order; written as ``HDS`` (as Beagle and minimac4 do).
    info : mapping of INFO key -> ndarray shape (n_variants,), optional
        A boolean array is a Flag (the key written alone where true).
    info_header : extra ``##INFO=<...>`` lines describing ``info`` keys.
    threads : int
        Threads that lay out the records and deflate the BGZF blocks (:class:`~omicslm.io.bgzf.ParallelBGZFWriter`).
    """
    if haplotypes is None:
        raise ValueError("write_vcf needs haplotypes (GT is required by every consumer)")
    positions = np.asarray(positions)
    n_var, n_samp = haplotypes.shape[:2]
    if len(positions) != n_var or len(samples) != n_samp:
        raise ValueError(
            f"shape mismatch: {n_var} variants x {n_samp} samples in haplotypes, "
            f"{len(positions)} positions, {len(samples)} sample names"
        )
    set_numba_threads(threads)  # _fill_fields' threads
    header, fmt_str = _header_lines(contig, samples, source=source, info_header=info_header,
                                    dosages=dosages is not None, genotype_probs=genotype_probs is not None,
                                    hap_dosages=hap_dosages is not None)
    path = Path(path)
    with atomic_indexed(path) as tmp:
        with ParallelBGZFWriter(tmp, threads=threads) as out:
            out.write(("\n".join(header) + "\n").encode())
            _write_records(out, contig, positions, ref, alt, haplotypes, dosages, genotype_probs, info, fmt_str,
                           hap_dosages=hap_dosages, gt_strings=_GT_PHASED if phased else _GT_UNPHASED)
        pysam.tabix_index(str(tmp), preset="vcf", force=True)
    return path


def _header_lines(contig: str, samples: Sequence[str], *, source: str, info_header: Sequence[str], dosages: bool,
                  genotype_probs: bool, hap_dosages: bool = False) -> tuple[list[str], str]:
    """The VCF header lines (``#CHROM`` line last) and the FORMAT string of the records."""
    fmt = ["GT"]
    header = [
        "##fileformat=VCFv4.2",
        f"##fileDate={datetime.date.today():%Y%m%d}",
        f"##source={source}",
        f"##contig=<ID={contig}>",
        *info_header,
        '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
    ]
    if dosages:
        fmt.append("DS")
        header.append('##FORMAT=<ID=DS,Number=A,Type=Float,Description="Estimated ALT dose [P(RA) + 2*P(AA)]">')
    if genotype_probs:
        fmt.append("GP")
        header.append('##FORMAT=<ID=GP,Number=G,Type=Float,Description="Estimated genotype probability">')
    if hap_dosages:
        fmt.append("HDS")
        header.append('##FORMAT=<ID=HDS,Number=2,Type=Float,Description="Estimated ALT dose of each haplotype">')
    header.append("\t".join(["#CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO", "FORMAT", *samples]))
    return header, ":".join(fmt)


def _byte_table(strings: np.ndarray) -> np.ndarray:
    """Equal-width strings as a (n, width) uint8 table (one row per string)."""
    width = len(strings[0])
    assert all(len(x) == width for x in strings)
    return np.frombuffer("".join(strings.tolist()).encode("ascii"), dtype=np.uint8).reshape(len(strings), width)


_COLON, _COMMA, _TAB, _NEWLINE = (ord(c) for c in ":,\t\n")
_BLOCK_BYTES = 1 << 23  # sample fields formatted at once (a block of records)
_NUMBER_WIDTH = 5       # every number is printed as d.ddd


@njit(cache=True, parallel=True)
def _fill_fields(buf, gt_codes, gt_table, nums, limits, seps, gt_sep: int) -> None:
    """Lay out the sample fields of a block of records in ``buf`` (records, samples, width) uint8.

    A field is the GT string ``gt_table[gt_codes[i, j]]``, then each number ``nums[i, j, c]`` clipped to
    ``[0, limits[c]]`` and printed with 3 decimals (the value rounded half to even at the third, as
    numpy's ``rint``), each followed by its separator (``gt_sep``, ``seps[c]``).
    """
    n_rec, n_samp = gt_codes.shape
    gw = gt_table.shape[1]
    thousand = np.float32(1000.0)
    zero = np.float32(0.0)
    for i in prange(n_rec):
        for j in range(n_samp):
            row = gt_table[gt_codes[i, j]]
            for b in range(gw):
                buf[i, j, b] = row[b]
            buf[i, j, gw] = gt_sep
            pos = gw + 1
            for c in range(nums.shape[2]):
                v = min(max(nums[i, j, c], zero), limits[c])  # NaN: refused by the caller
                k = int(np.rint(v * thousand))
                buf[i, j, pos] = 48 + k // 1000
                buf[i, j, pos + 1] = 46  # '.'
                buf[i, j, pos + 2] = 48 + (k // 100) % 10
                buf[i, j, pos + 3] = 48 + (k // 10) % 10
                buf[i, j, pos + 4] = 48 + k % 10
                buf[i, j, pos + _NUMBER_WIDTH] = seps[c]
                pos += _NUMBER_WIDTH + 1


def _write_records(out, contig: str, positions: np.ndarray, ref, alt, haplotypes: np.ndarray, dosages, genotype_probs,
                   info, fmt_str: str, *, hap_dosages=None, gt_strings: np.ndarray = _GT_PHASED) -> None:
    """Write one VCF line per variant to the open BGZF file ``out`` (arrays as in :func:`write_vcf`).

    Every sample field has a fixed width (GT, then numbers printed with 3 decimals), so a block of
    records is laid out as one byte array by a compiled loop (:func:`_fill_fields`): formatting
    millions of numbers one by one in Python would dominate the write time.
    """
    codes = (haplotypes[..., 0].astype(np.int8) * 2 + haplotypes[..., 1]).astype(np.int8)
    n_var, n_samp = codes.shape
    # the numbers of a sample's field in FORMAT order, with their upper limits and the separator after each
    columns, limits, seps = [], [], []
    for arr, limit in ((dosages, 2.0), (genotype_probs, 1.0), (hap_dosages, 1.0)):
        if arr is None:
            continue
        arr = np.asarray(arr, dtype=np.float32)
        if np.isnan(arr).any():
            i, j = np.argwhere(np.isnan(arr))[0][:2]
            raise ValueError(f"NaN dosage or probability to write at record {int(i)} (position {positions[i]}), "
                             f"sample {int(j)}")
        parts = [arr] if arr.ndim == 2 else [arr[..., k] for k in range(arr.shape[-1])]
        columns += parts
        limits += [limit] * len(parts)
        seps += [_COMMA] * (len(parts) - 1) + [_COLON]
    if columns:
        seps[-1] = _TAB  # the last number ends the sample's field
    gt_sep = _COLON if columns else _TAB
    seps = np.array(seps, dtype=np.uint8)
    limits = np.array(limits, dtype=np.float32)
    gt_table = _byte_table(gt_strings)
    width = gt_table.shape[1] + 1 + len(columns) * (_NUMBER_WIDTH + 1)
    block = max(1, _BLOCK_BYTES // max(1, n_samp * width))
    for b0 in range(0, n_var, block):
        b1 = min(n_var, b0 + block)
        nums = (np.stack([c[b0:b1] for c in columns], axis=-1) if columns
                else np.zeros((b1 - b0, n_samp, 0), dtype=np.float32))
        buf = np.empty((b1 - b0, n_samp, width), dtype=np.uint8)
        _fill_fields(buf, np.ascontiguousarray(codes[b0:b1]), gt_table, nums, limits, seps, gt_sep)
        buf[:, -1, -1] = _NEWLINE
        for i in range(b0, b1):
            line = f"{contig}\t{positions[i]}\t.\t{ref[i]}\t{alt[i]}\t.\tPASS\t{_format_info(info, i)}\t{fmt_str}\t"
            out.write(line.encode() + buf[i - b0].tobytes())
