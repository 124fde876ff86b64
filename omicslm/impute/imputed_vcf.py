"""Imputed VCFs: ours written from haplotype ALT probabilities, and any method's read back.

:func:`write_imputed_vcf` writes our imputation (GT, DS, GP, HDS; INFO AF, R2, IMP / TYPED) from per-haplotype
ALT probabilities, whose fields :func:`genotype_outputs` derives. :func:`read_imputed` reads any method's imputed
VCF (Beagle, minimac4, omicslm) as dosage and genotype matrices: rows follow the requested positions and columns
the requested samples, whatever order the file holds them in, so every method is scored against the truth with
the same code (:mod:`omicslm.impute.evaluate`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numba
import numpy as np
from tqdm import tqdm

from omicslm.errors import InputError
from omicslm.impute.layout import Panel
from omicslm.io.threads import set_numba_threads
from omicslm.io.vcf import write_vcf

#: cyvcf2 ``gt_types`` code for a missing genotype (with ``gts012=True``).
_GT_UNKNOWN = 3


def read_imputed(
    vcf: str | os.PathLike,
    positions: np.ndarray,
    samples: Sequence[str],
    *,
    ref: Sequence[str] | None = None,
    alt: Sequence[str] | None = None,
    contig: str | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Read dosages and best-guess genotypes of an imputed VCF at the requested sites.

    Works for any method's output: Beagle 5.4 (``GT:DS[:GP]``), minimac4 (``GT:DS`` or
    ``GT:HDS``) and omicslm (``GT:DS:GP``).

    Parameters
    ----------
    vcf : path
        Bgzipped (or plain) VCF, biallelic records, one contig.
    positions : ndarray, int, shape (n_positions,)
        1-based positions to read, e.g. the truth's scored sites; defines the row order.
    samples : sequence of str, length n_samples
        Sample names to read; defines the column order. The VCF may list them in another
        order and may hold extra samples.
    ref, alt : sequence of str, length n_positions, optional
        Expected alleles per position; a record whose REF/ALT differ is an error. When a
        position holds several records (split multi-allelics), the matching one is used.
    contig : str, optional
        Only records on this contig are considered (default: any contig).

    Returns
    -------
    dosage : ndarray, float32, shape (n_positions, n_samples)
        Expected ALT-allele count: FORMAT ``DS``; else the sum of the two haplotype
        dosages ``HDS``; else the GT allele count.
    gt : ndarray, int8, shape (n_positions, n_samples)
        ALT-allele count (0/1/2) of the best-guess genotype ``GT``.

    Raises
    ------
    InputError
        The VCF is unreadable; a requested sample or position is absent; a record's
        REF/ALT differ from ``ref``/``alt``; a position is ambiguous (several records and
        no alleles to choose); a genotype or dosage is missing or out of [0, 2].
    """
    positions = np.asarray(positions, dtype=np.int64)
    samples = [str(s) for s in samples]
    if (ref is None) != (alt is None):
        raise ValueError("give both ref and alt, or neither")
    if len(set(positions.tolist())) != len(positions):
        raise ValueError("requested positions must be unique")
    row_of = {int(p): i for i, p in enumerate(positions)}
    reader, perm = _open_for_samples(vcf, samples)
    dosage = np.full((len(positions), len(samples)), np.nan, dtype=np.float32)
    gt = np.full((len(positions), len(samples)), -1, dtype=np.int8)
    filled = np.zeros(len(positions), dtype=bool)
    seen_alleles: dict[int, list[str]] = {}
    for rec in tqdm(reader, desc=f"read {Path(vcf).name}", unit=" records", mininterval=5):
        i = row_of.get(rec.POS)
        if i is None or (contig is not None and rec.CHROM != contig):
            continue
        where = f"{rec.CHROM}:{rec.POS}"
        alleles = f"{rec.REF}>{','.join(rec.ALT)}"
        if ref is not None and (rec.REF != ref[i] or rec.ALT != [alt[i]]):
            # A split multi-allelic may hold the matching record further on.
            seen_alleles.setdefault(i, []).append(alleles)
            continue
        if filled[i]:
            raise InputError(vcf, "several records at this position and no alleles given to choose one", where)
        if len(rec.ALT) != 1:
            raise InputError(vcf, f"record is not biallelic ({alleles})", where)
        gt[i], dosage[i] = _record_calls(vcf, rec, perm, samples, where)
        filled[i] = True
    reader.close()
    if not filled.all():
        raise _unfilled_error(vcf, filled, seen_alleles, positions, ref, alt, contig)
    return dosage, gt


def _open_for_samples(vcf, samples: list[str]):
    """A lazy ``gts012`` cyvcf2 reader of ``samples`` and the permutation from its columns to theirs.

    Returns ``(reader, perm)``; ``perm`` : ndarray, intp, shape (n_samples,).
    """
    import cyvcf2  # imported here so the pure-numpy scoring works without it

    try:
        reader = cyvcf2.VCF(str(vcf), gts012=True, lazy=True)
    except (OSError, IOError) as exc:
        raise InputError(vcf, f"cannot open imputed VCF ({exc})") from exc
    have = set(reader.samples)
    for s in samples:
        if s not in have:
            raise InputError(vcf, "requested sample is absent from the imputed VCF", record=s)
    reader.close()
    # Decoding only the samples we score is much faster on wide outputs; cyvcf2 keeps the
    # file's sample order, so columns are permuted afterwards.
    reader = cyvcf2.VCF(str(vcf), gts012=True, samples=samples, lazy=True)
    file_col = {s: j for j, s in enumerate(reader.samples)}
    return reader, np.array([file_col[s] for s in samples], dtype=np.intp)


def _record_calls(vcf, rec, perm: np.ndarray, samples: list[str], where: str) -> tuple[np.ndarray, np.ndarray]:
    """Best-guess ALT count (int8) and dosage (float) of one record, in ``samples`` order; checked."""
    row_gt = rec.gt_types[perm]
    if np.any(row_gt == _GT_UNKNOWN):
        bad = samples[int(np.argmax(row_gt == _GT_UNKNOWN))]
        raise InputError(vcf, f"missing genotype (GT) for sample {bad}", where)
    fmt = rec.FORMAT
    if "DS" in fmt:
        row_ds = rec.format("DS")[perm, 0]
    elif "HDS" in fmt:
        # Two haplotype dosages per diploid sample; their sum is the ALT dose.
        row_ds = rec.format("HDS")[perm, :2].sum(axis=1)
    else:
        row_ds = row_gt.astype(np.float32)
    if not np.all(np.isfinite(row_ds)):
        bad = samples[int(np.argmax(~np.isfinite(row_ds)))]
        raise InputError(vcf, f"missing dosage for sample {bad}", where)
    if np.any((row_ds < 0) | (row_ds > 2)):
        bad = samples[int(np.argmax((row_ds < 0) | (row_ds > 2)))]
        raise InputError(vcf, f"dosage outside [0, 2] for sample {bad}", where)
    return row_gt, row_ds


def _unfilled_error(vcf, filled: np.ndarray, seen_alleles: dict, positions: np.ndarray, ref, alt,
                    contig: str | None) -> InputError:
    """The error for the first requested position no record matched (alleles differ, or absent)."""
    i = int(np.argmin(filled))
    if i in seen_alleles:
        problem = (f"REF/ALT mismatch: expected {ref[i]}>{alt[i]}, "
                   f"imputed VCF has {' and '.join(seen_alleles[i])}")
    else:
        problem = (f"scored position is absent from the imputed VCF "
                   f"({int((~filled).sum())} of {len(positions)} requested positions missing)")
    return InputError(vcf, problem, record=f"{contig or 'pos'}:{positions[i]}")


def write_imputed_vcf(out_vcf, panel: Panel, samples: list[str], p: np.ndarray, observed: np.ndarray, *,
                      method: str, threads: int = 1) -> None:
    """Every panel site from haplotype ALT probabilities ``p`` (n_variants, n_samples, 2); ``observed``: the target's
    own (array) sites, flagged TYPED, the others IMP."""
    hap, ds, gp, info = genotype_outputs(p, threads=threads)
    info["IMP"] = ~observed
    info["TYPED"] = observed.copy()
    write_vcf(out_vcf, contig=panel.contig, positions=panel.pos, ref=panel.ref, alt=panel.alt, samples=samples,
              haplotypes=hap, dosages=ds, genotype_probs=gp, hap_dosages=np.clip(p, 0.0, 1.0), info=info,
              source=f"omicslm {method}", threads=threads,
              info_header=[
                  '##INFO=<ID=AF,Number=A,Type=Float,Description="Mean imputed ALT allele frequency">',
                  '##INFO=<ID=R2,Number=1,Type=Float,Description="Estimated imputation r2: var(DS)/(2AF(1-AF))">',
                  '##INFO=<ID=IMP,Number=0,Type=Flag,Description="Imputed marker (not in the target\'s array)">',
                  '##INFO=<ID=TYPED,Number=0,Type=Flag,Description="Typed marker: the target\'s own phased genotypes">',
              ])


def genotype_outputs(p: np.ndarray, *, threads: int | None = None
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    """Best-guess haplotypes, dosage, genotype probabilities and INFO from haplotype ALT probabilities.

    Parameters
    ----------
    p : ndarray, float, shape (n_variants, n_samples, 2)
        Clipped to [0, 1]; a NaN stays NaN (the VCF writer refuses it, naming the record).
    threads : int, optional
        CPU threads of the compiled loop over variants (None: numba's current number).

    Returns
    -------
    hap : int8 (n_variants, n_samples, 2) per-haplotype argmax (phased GT)
    ds : float32 (n_variants, n_samples) ``p1 + p2``
    gp : float32 (n_variants, n_samples, 3) ``(1-p1)(1-p2), p1(1-p2) + p2(1-p1), p1 p2``
    info : {"AF": mean ALT dosage / 2, "R2": var(DS) / (2 AF (1 - AF)) clipped to [0, 1]
        (minimac's Rsq estimate: 1 when dosages are as spread as true genotypes would be;
        0 at sites imputed monomorphic)}

    Every value is computed in float64 and stored as float32, in one compiled pass per variant.
    """
    p = np.asarray(p)
    if p.ndim != 3 or p.shape[2] != 2:
        raise ValueError(f"haplotype ALT probabilities must be (variants, samples, 2), got shape {p.shape}")
    if threads is not None:
        set_numba_threads(threads)
    n_var, n_samp = p.shape[:2]
    hap = np.empty((n_var, n_samp, 2), dtype=np.int8)
    ds = np.empty((n_var, n_samp), dtype=np.float32)
    gp = np.empty((n_var, n_samp, 3), dtype=np.float32)
    af = np.empty(n_var, dtype=np.float32)
    r2 = np.empty(n_var, dtype=np.float32)
    p = np.ascontiguousarray(p, dtype=p.dtype if p.dtype in (np.float32, np.float64) else np.float64)
    _genotype_fields(p, hap, ds, gp, af, r2)
    return hap, ds, gp, {"AF": af, "R2": r2}


@numba.njit(cache=True, inline="always")
def _unit(x: float) -> float:
    """``x`` clipped to [0, 1]; NaN stays NaN (comparisons with NaN are false)."""
    if x < 0.0:
        return 0.0
    if x > 1.0:
        return 1.0
    return x


@numba.njit(parallel=True, cache=True)
def _genotype_fields(p, hap, ds, gp, af, r2):
    """:func:`genotype_outputs` into its arrays, one variant per iteration (float64 arithmetic)."""
    n_var, n_samp = p.shape[0], p.shape[1]
    for v in numba.prange(n_var):
        total = 0.0
        for j in range(n_samp):
            a = _unit(np.float64(p[v, j, 0]))
            b = _unit(np.float64(p[v, j, 1]))
            d = a + b
            ds[v, j] = d
            gp[v, j, 0] = (1.0 - a) * (1.0 - b)
            gp[v, j, 1] = a * (1.0 - b) + b * (1.0 - a)
            gp[v, j, 2] = a * b
            hap[v, j, 0] = 1 if a >= 0.5 else 0
            hap[v, j, 1] = 1 if b >= 0.5 else 0
            total += d
        mean = total / n_samp if n_samp > 0 else np.nan
        spread = 0.0
        for j in range(n_samp):
            e = _unit(np.float64(p[v, j, 0])) + _unit(np.float64(p[v, j, 1])) - mean
            spread += e * e
        freq = mean / 2.0
        expected = 2.0 * freq * (1.0 - freq)
        af[v] = freq
        r2[v] = _unit(spread / n_samp / expected) if expected > 0.0 else 0.0
