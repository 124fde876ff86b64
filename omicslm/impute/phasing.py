"""Pre-phasing a user's targets against the reference panel with Beagle 5.4, as imputation servers do.

Array genotypes arrive unphased (``0/1``) and with sporadic missing calls; the
imputation step (:func:`omicslm.impute.baselines.run_beagle`, minimac4, the chunked
workflow of :mod:`omicslm.impute.chunks`) needs phased, complete haplotypes. Beagle
run with ``impute=false`` and ``ref=`` phases the targets using the panel's
haplotypes and fills the missing calls, writing only the target's sites.

A target that is already phased and complete is copied rather than re-phased, so
re-running the step on phased input changes nothing. Outputs are bgzipped,
tabix-indexed and atomic (made in a temporary directory beside the final path,
index renamed into place before its VCF).
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import cyvcf2
import pysam

from omicslm.impute.baselines import beagle_to_vcf, require_file, run_tool
from omicslm.io.atomic import publish_with_index, scratch_dir

logger = logging.getLogger(__name__)

def _first_unphased(path: Path) -> str | None:
    """Describe the first record of ``path`` with an unphased or missing call; None when there is none."""
    vcf = cyvcf2.VCF(str(path))
    try:
        samples = vcf.samples
        for rec in vcf:
            if rec.genotype is None:
                return f"no GT at {rec.CHROM}:{rec.POS}"
            calls = rec.genotype.array()  # (n_samples, ploidy + 1): alleles (-1 missing, -2 padding), phased flag
            missing = (calls[:, :-1] == -1).any(axis=1)
            unphased = calls[:, -1] != 1
            bad = missing | unphased
            if bad.any():
                i = int(bad.argmax())
                what = "a missing" if missing[i] else "an unphased"
                return f"{what} call at {rec.CHROM}:{rec.POS} (sample {samples[i]})"
    finally:
        vcf.close()
    return None


def _is_bgzf(path: Path) -> bool:
    """True when ``path`` starts with a BGZF block header (gzip with the ``BC`` extra subfield)."""
    with open(path, "rb") as fh:
        head = fh.read(18)
    return len(head) == 18 and head[:4] == b"\x1f\x8b\x08\x04" and head[12:14] == b"BC"


def _copy_phased(target_vcf: Path, out_vcf: Path) -> None:
    """Copy an already phased ``target_vcf`` (and its fresh ``.tbi``) onto ``out_vcf``, atomically.

    A BGZF file is copied byte for byte, its index too when it is at least as new as the
    VCF (otherwise the index is rebuilt); a plain or plain-gzip VCF is recompressed with bcftools.
    """
    index = Path(f"{target_vcf}.tbi")
    with scratch_dir(out_vcf) as tmp:
        result = tmp / "phased.vcf.gz"
        if _is_bgzf(target_vcf):
            shutil.copyfile(target_vcf, result)
            fresh_index = index.is_file() and index.stat().st_mtime >= target_vcf.stat().st_mtime
        else:
            run_tool(["bcftools", "view", "--no-version", "-Oz", "-o", result, target_vcf], tool="bcftools view")
            fresh_index = False
        if fresh_index:
            shutil.copyfile(index, f"{result}.tbi")
        else:
            pysam.tabix_index(str(result), preset="vcf", force=True)
        publish_with_index(result, out_vcf)


def phase_targets(
    target_vcf: str | os.PathLike,
    ref_vcf: str | os.PathLike,
    out_vcf: str | os.PathLike,
    *,
    genetic_map: str | os.PathLike | None = None,
    threads: int = 1,
    mem_gb: int = 2,
    seed: int = 1,
    ne: float | None = None,
) -> dict:
    """Phase ``target_vcf`` against the panel ``ref_vcf`` with Beagle 5.4 (``impute=false``).

    Beagle phases the unphased calls and fills the missing ones from the panel's
    haplotypes; the output holds the target's sites (those Beagle can match to the
    panel) with phased ``GT`` only. When every call of ``target_vcf`` is already phased
    and none is missing, Beagle is not run and the file is copied.

    Parameters
    ----------
    target_vcf, ref_vcf : path
        The user's genotypes (VCF, plain or bgzipped; phased or not; missing calls allowed)
        and the phased reference panel (bgzipped).
    out_vcf : path
        Output ``.vcf.gz``; ``out_vcf.tbi`` is written too.
    genetic_map : path, optional
        PLINK map (see :func:`omicslm.impute.baselines.convert_genetic_map`); without it
        Beagle assumes 1 cM = 1 Mb.
    threads : int
        Beagle ``nthreads``.
    mem_gb : int
        Java heap (-Xmx) in GiB when the Debian jar is used.
    seed : int
        Beagle's random seed.
    ne : float, optional
        Effective population size (Beagle's default when None).

    Returns
    -------
    dict
        ``{"phased_by": "input"}`` when the input was copied, else
        ``{"phased_by": "beagle", "seconds": float}`` (Beagle's wall-clock seconds).

    Raises
    ------
    InputError
        ``target_vcf`` or ``ref_vcf`` does not exist.
    RuntimeError
        Beagle failed, wrote no VCF, or wrote one that still holds an unphased or
        missing call; the message quotes its output.
    """
    target_vcf = require_file(target_vcf, "target VCF")
    out_vcf = Path(out_vcf)
    problem = _first_unphased(target_vcf)
    if problem is None:
        logger.info("%s is already phased with no missing call; copying it to %s", target_vcf, out_vcf)
        _copy_phased(target_vcf, out_vcf)
        return {"phased_by": "input"}
    ref_vcf = require_file(ref_vcf, "reference panel VCF")
    logger.info("phasing %s with Beagle (first problem: %s)", target_vcf, problem)
    def fully_phased(result: Path) -> None:
        left = _first_unphased(result)
        if left is not None:
            raise RuntimeError(f"beagle (phasing) left {left} in its output for {target_vcf}")

    seconds = beagle_to_vcf(ref_vcf, target_vcf, out_vcf, ["impute=false"], genetic_map=genetic_map, threads=threads,
                            mem_gb=mem_gb, seed=seed, ne=ne, tool="beagle (phasing)", check=fully_phased)
    return {"phased_by": "beagle", "seconds": seconds}
