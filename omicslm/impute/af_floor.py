"""The allele-frequency floor: every test sample gets the panel's expectation (the baseline any method must beat)."""

from __future__ import annotations

import logging
import os
import time

import h5py
import numpy as np
from tqdm import tqdm

from omicslm.errors import InputError
from omicslm.impute.layout import read_panel
from omicslm.impute.split import PANEL_ROLES, panel_alt_frequency, read_split, role_indices
from omicslm.io.vcf import write_vcf

logger = logging.getLogger(__name__)

#: Variants per HDF5 read when counting panel alleles (bounds memory on big panels).
_AF_CHUNK_VARIANTS = 10_000


def write_af_floor(h5: str | os.PathLike, split_tsv: str | os.PathLike, out_vcf: str | os.PathLike) -> float:
    """Write the allele-frequency floor: every test sample gets the panel's expectation.

    At each ingested site, with ``p`` the ALT frequency over the panel samples'
    haplotypes (role reference or validation): ``DS = 2p``, ``GP`` is Hardy-Weinberg
    ``((1-p)^2, 2p(1-p), p^2)`` and ``GT`` is the most probable genotype
    (``0|0``, ``0|1`` or ``1|1``). Any method worth running must beat this.

    Parameters
    ----------
    h5 : path
        Ingested panel (:mod:`omicslm.impute.layout`).
    split_tsv : path
        Split table (:func:`read_split`).
    out_vcf : path
        Output ``.vcf.gz`` (+ ``.tbi``); samples are the test samples in HDF5 order.
        HDF5 samples absent from the split are neither panel nor target.

    Returns
    -------
    float
        Wall-clock seconds the computation and writing took.

    Raises
    ------
    InputError
        A split sample is absent from the HDF5, or the split has no panel or no test samples.
    """
    start = time.perf_counter()
    split = read_split(split_tsv)
    panel = read_panel(h5, haplotypes=False)
    panel_idx = role_indices(panel, split, PANEL_ROLES, split_tsv=split_tsv, h5=h5)
    test_idx = role_indices(panel, split, ["test"], split_tsv=split_tsv, h5=h5)
    if not len(panel_idx) or not len(test_idx):
        raise InputError(split_tsv, f"needs panel (reference/validation) and test samples; "
                                    f"found {len(panel_idx)} panel and {len(test_idx)} test")

    # ALT frequency in chunks of variants so a whole-genome panel never sits in memory.
    p = np.zeros(panel.n_variants, dtype=np.float64)
    with h5py.File(h5, "r") as f:
        hap = f["calldata/HAP"]
        for lo in tqdm(range(0, panel.n_variants, _AF_CHUNK_VARIANTS), desc="panel AF", unit="chunk",
                       disable=None):
            hi = min(lo + _AF_CHUNK_VARIANTS, panel.n_variants)
            p[lo:hi] = panel_alt_frequency(hap[lo:hi], panel_idx)

    gp_site = np.stack([(1 - p) ** 2, 2 * p * (1 - p), p**2], axis=1)  # (n_variants, 3)
    best = gp_site.argmax(axis=1)  # 0 = hom-ref, 1 = het, 2 = hom-alt
    # genotype index -> phased alleles; a het is written 0|1 by convention (no phase information)
    alleles = np.array([[0, 0], [0, 1], [1, 1]], dtype=np.int8)[best]  # (n_variants, 2)
    n_test = len(test_idx)
    write_vcf(
        out_vcf,
        contig=panel.contig,
        positions=panel.pos,
        ref=panel.ref,
        alt=panel.alt,
        samples=list(panel.samples[test_idx]),
        haplotypes=np.broadcast_to(alleles[:, None, :], (panel.n_variants, n_test, 2)),
        dosages=np.broadcast_to((2 * p)[:, None], (panel.n_variants, n_test)),
        genotype_probs=np.broadcast_to(gp_site[:, None, :], (panel.n_variants, n_test, 3)),
        source="omicslm.impute.af_floor.write_af_floor",
    )
    seconds = time.perf_counter() - start
    logger.info("AF floor: %d sites x %d test samples in %.1f s -> %s", panel.n_variants, n_test, seconds, out_vcf)
    return seconds
