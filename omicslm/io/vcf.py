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

from omicslm.io.atomic import atomic_indexed

_GT_PHASED = np.array(["0|0", "0|1", "1|0", "1|1"])
_GT_UNPHASED = np.array(["0/0", "0/1", "0/1", "1/1"])  # what an array genotype call gives: no haplotype order
_DS_STR = np.array([f"{i / 1000:.3f}" for i in range(2001)])  # dosage 0.000 .. 2.000
_P_STR = np.array([f"{i / 1000:.3f}" for i in range(1001)])  # probability 0.000 .. 1.000


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
    header, fmt_str = _header_lines(contig, samples, source=source, info_header=info_header,
                                    dosages=dosages is not None, genotype_probs=genotype_probs is not None,
                                    hap_dosages=hap_dosages is not None)
    path = Path(path)
    with atomic_indexed(path) as tmp:
        with pysam.BGZFile(str(tmp), "wb") as out:
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


def _write_records(out, contig: str, positions: np.ndarray, ref, alt, haplotypes: np.ndarray, dosages, genotype_probs,
                   info, fmt_str: str, *, hap_dosages=None, gt_strings: np.ndarray = _GT_PHASED) -> None:
    """Write one VCF line per variant to the open BGZF file ``out`` (arrays as in :func:`write_vcf`)."""
    codes = (haplotypes[..., 0].astype(np.intp) * 2 + haplotypes[..., 1]).astype(np.intp)
    # Numbers are printed with 3 decimals through lookup tables of every possible
    # string: formatting millions of floats one by one dominates the write time.
    ds_idx = None if dosages is None else np.rint(np.clip(dosages, 0, 2) * 1000).astype(np.intp)
    gp_idx = None if genotype_probs is None else np.rint(np.clip(genotype_probs, 0, 1) * 1000).astype(np.intp)
    hds_idx = None if hap_dosages is None else np.rint(np.clip(hap_dosages, 0, 1) * 1000).astype(np.intp)
    for i in range(len(positions)):
        columns = [gt_strings[codes[i]].tolist()]
        if ds_idx is not None:
            columns.append(_DS_STR[ds_idx[i]].tolist())
        if gp_idx is not None:
            g = gp_idx[i]
            columns.append(map(",".join, zip(_P_STR[g[:, 0]].tolist(), _P_STR[g[:, 1]].tolist(), _P_STR[g[:, 2]].tolist())))
        if hds_idx is not None:
            h = hds_idx[i]
            columns.append(map(",".join, zip(_P_STR[h[:, 0]].tolist(), _P_STR[h[:, 1]].tolist())))
        fields = columns[0] if len(columns) == 1 else map(":".join, zip(*columns))
        line = f"{contig}\t{positions[i]}\t.\t{ref[i]}\t{alt[i]}\t.\tPASS\t{_format_info(info, i)}\t{fmt_str}\t"
        out.write((line + "\t".join(fields) + "\n").encode())
