"""Decode the genotype (GT) columns of a chunk of VCF text records with numpy.

Used by the text engine of :func:`omicslm.impute.vcf_records.iter_vcf_chunks`. A phased
biallelic sample with one-digit alleles is always the 4 bytes ``a|b<TAB>``, so the sample
columns of a chunk of ``FORMAT=GT`` records are one uint32 matrix that numpy checks and
decodes at memory speed. Records that do not fit the 4-byte layout (other FORMAT keys after
GT, multi-digit alleles, haploid calls, bad text) take an exact per-sample parser, which
raises :class:`omicslm.errors.InputError` naming file, record, sample and problem.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from omicslm.errors import InputError

#: byte -> allele index for the vectorised decoder: digits, '.' = missing (-1);
#: anything else is _BAD and sends the record to the slow, exact parser for its message.
_BAD = -100
_ALLELE_LUT = np.full(256, _BAD, dtype=np.int8)
_ALLELE_LUT[ord("0") : ord("9") + 1] = np.arange(10)
_ALLELE_LUT[ord(".")] = -1
_GT_SPLIT = re.compile(rb"([|/])")


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


def decode_gt_columns(path: Path, where: list, fmts: list, fields: list, names: list[str], min_mac: float | None):
    """Decode the sample columns of a chunk of records, vectorised where the layout allows.

    A record whose FORMAT is exactly ``GT`` with one-character alleles has every sample
    in 4 bytes (``a|b<TAB>``), so the chunk is one (n_sites, n_samples) uint32 array
    that numpy checks and decodes at memory speed; other records go through
    :func:`_parse_gt_row`. Plain records (all alleles 0/1, all phased) whose minor-allele
    count is below ``min_mac`` are dropped before their alleles are unpacked.

    Parameters
    ----------
    where : list of str, length n_records
        ``CHROM:POS`` of each record, for error messages.
    fmts, fields : list of bytes, length n_records
        Each record's FORMAT column (GT first) and its sample columns (tab-separated,
        line end stripped).
    names : list of str, length n_samples
        The VCF's sample names.
    min_mac : float or None
        Minor-allele count below which plain records are dropped (None: keep all).

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
