"""The on-disk HDF5 layout of an ingested haplotype panel (format version 2).

Written by :func:`omicslm.impute.ingest.vcf_to_hdf5`, read by every later step.
Sites are the biallelic SNPs, and (``indels=True``) biallelic indels, that passed the MAF
filter, in position order, one site per position; samples are the VCF samples listed in
the population panel file, in VCF order.

==========================  =========  ==========================  ===========================================
path                        dtype      shape                       meaning
==========================  =========  ==========================  ===========================================
variants/POS                int64      (n_variants,)               1-based position, strictly increasing
variants/REF, variants/ALT  S          (n_variants,)               reference / alternate allele (ACGT string)
variants/ID                 S          (n_variants,)               VCF ID column ('.' when absent)
variants/TYPE               int8       (n_variants,)               variant class, index into attrs type_names
variants/AF                 float32    (n_variants,)               alt-allele frequency over all ingested haplotypes
variants/AF_POP             float32    (n_variants, n_pops)        alt-allele frequency within each population
variants/GENO_FREQ          float32    (n_variants, 3)             hom-ref / het / hom-alt genotype frequency
calldata/HAP                int8       (n_variants, n_samples, 2)  phased alleles, 0 = REF, 1 = ALT
samples/ID                  S          (n_samples,)                sample name
samples/POP                 int16      (n_samples,)                index into populations/NAME
samples/SUPER_POP           S          (n_samples,)                super-population label from the panel file
populations/NAME            S          (n_pops,)                   population labels, sorted
==========================  =========  ==========================  ===========================================

Root attributes: ``format_version`` (int), ``contig`` (str), ``source_vcf`` (str),
``min_maf`` (float), ``indels`` (bool), ``type_names`` (list of 'REF>ALT' strings, then 'INS', 'DEL',
'MNP'), and
``n_skipped_<reason>`` counts for every reason a record was dropped.

Index maps: position -> variant index is ``np.searchsorted(POS, pos)``;
population -> index is the order of ``populations/NAME``; variant type -> index is
the order of ``type_names``.

Version 1 files (SNPs only, one-byte REF/ALT, 12 type names) are read as they are: version 2
only added allele strings and the three indel classes after the 12 substitutions.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import h5py
import numpy as np

from omicslm.errors import InputError

FORMAT_VERSION = 2
#: Versions :func:`read_panel` reads (version 1 is the SNP-only subset of version 2).
READABLE_VERSIONS = (1, 2)

#: The 12 possible REF>ALT single-base substitutions, in a fixed order.
SNP_TYPES = [f"{r}>{a}" for r in "ACGT" for a in "ACGT" if r != a]
#: Variant classes: the substitutions, then insertions (ALT longer than REF), deletions (ALT shorter) and
#: multi-base substitutions of equal length.
TYPE_NAMES = SNP_TYPES + ["INS", "DEL", "MNP"]


def is_snp_type(vtype: np.ndarray) -> np.ndarray:
    """True where a ``variants/TYPE`` value is a single-base substitution: ndarray, bool."""
    return np.asarray(vtype) < len(SNP_TYPES)

REQUIRED = (
    "variants/POS",
    "variants/REF",
    "variants/ALT",
    "variants/TYPE",
    "variants/AF",
    "variants/AF_POP",
    "variants/GENO_FREQ",
    "calldata/HAP",
    "samples/ID",
    "samples/POP",
    "samples/SUPER_POP",
    "populations/NAME",
)


def _str(a) -> np.ndarray:
    return np.array([x.decode() if isinstance(x, bytes) else str(x) for x in a], dtype=object)


@dataclass
class Panel:
    """An ingested panel loaded in memory (haplotypes optional, they can be large)."""

    contig: str
    pos: np.ndarray
    ref: np.ndarray
    alt: np.ndarray
    vtype: np.ndarray
    af: np.ndarray
    af_pop: np.ndarray
    geno_freq: np.ndarray
    samples: np.ndarray
    pop: np.ndarray
    super_pop: np.ndarray
    populations: np.ndarray
    hap: np.ndarray | None = None

    @property
    def n_variants(self) -> int:
        return len(self.pos)

    @property
    def n_samples(self) -> int:
        return len(self.samples)


def check_h5(path: str | os.PathLike, required=REQUIRED) -> None:
    """Raise :class:`InputError` naming the first missing dataset or a wrong version."""
    with h5py.File(path, "r") as f:
        version = f.attrs.get("format_version")
        if version not in READABLE_VERSIONS:
            raise InputError(path, f"HDF5 format_version is {version!r}, expected one of {READABLE_VERSIONS} "
                                   "(re-ingest the VCF: delete this file and rerun)")
        for key in required:
            if key not in f:
                raise InputError(path, f"HDF5 is missing dataset '{key}' (see omicslm.impute.layout)")


def read_panel(path: str | os.PathLike, *, haplotypes: bool = True) -> Panel:
    """Load an ingested panel; ``haplotypes=False`` skips the large ``calldata/HAP``."""
    check_h5(path)
    with h5py.File(path, "r") as f:
        return Panel(
            contig=str(f.attrs["contig"]),
            pos=f["variants/POS"][:],
            ref=_str(f["variants/REF"][:]),
            alt=_str(f["variants/ALT"][:]),
            vtype=f["variants/TYPE"][:],
            af=f["variants/AF"][:],
            af_pop=f["variants/AF_POP"][:],
            geno_freq=f["variants/GENO_FREQ"][:],
            samples=_str(f["samples/ID"][:]),
            pop=f["samples/POP"][:],
            super_pop=_str(f["samples/SUPER_POP"][:]),
            populations=_str(f["populations/NAME"][:]),
            hap=f["calldata/HAP"][:] if haplotypes else None,
        )
