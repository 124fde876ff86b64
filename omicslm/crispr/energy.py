"""CRISPRoff-style gRNA–target binding free energy (kcal/mol, 37 °C) of each on-target site.

Following CRISPRoff (Alkan et al. 2018, Genome Biol 19:177), binding is the RNA–DNA hybrid
formation, paid for by opening the target DNA duplex and unfolding the gRNA spacer:

    dG_bind = sum_i w_i * dG_hybrid,i (RNA:DNA) - dG_duplex(DNA:DNA) - dG_fold(gRNA)

``dG_hybrid,i`` are the Sugimoto et al. (1995) RNA/DNA nearest-neighbour stacks of the 20-nt
spacer (no initiation term; +0.25 for an A/T pair closing either end, as CRISPRoff), each
weighted by CRISPRoff's position weight ``w_i`` (its estimate of Cas9's influence on the
hybrid at that position, 1.0–2.25); ``dG_duplex`` sums the SantaLucia (1998) unified DNA
stacks of the protospacer (unweighted); ``dG_fold`` is the ViennaRNA minimum free energy of the
spacer RNA (``RNA.fold``; the PyPI wheel ships no RNAfold program). On-target sites are perfect
matches with an NGG PAM, so CRISPRoff's mismatch loops and PAM factor (1.0 for NGG) do not
arise. More negative = stronger binding; CRISPRoff's own output is the negated value.
"""

from __future__ import annotations

import logging
import os

import numpy as np
import pandas as pd

from omicslm.crispr.join import read_guides
from omicslm.crispr.kmers import FLANK5, SPACER
from omicslm.io.atomic import atomic_open

log = logging.getLogger(__name__)

# Sugimoto 1995, RNA 5'->3' dinucleotide (DNA strand its complement), dG37 kcal/mol
RNA_DNA_STACK = {
    "AA": -1.0, "AC": -2.1, "AG": -1.8, "AU": -0.9, "CA": -0.9, "CC": -2.1, "CG": -1.7, "CU": -0.9,
    "GA": -1.3, "GC": -2.7, "GG": -2.9, "GU": -1.1, "UA": -0.6, "UC": -1.5, "UG": -1.6, "UU": -0.2,
}
RNA_DNA_END_AT = 0.25  # CRISPRoff: an A/T pair closing the hybrid at either end
# CRISPRoff's position weights of the hybrid stacks, spacer 5'->3' (stack i = bases i, i+1; 19 stacks)
HYBRID_WEIGHTS = (1.80067099242007, 1.95666668400006, 1.90472004401173, 2.13047270152512, 1.37853848098249,
                  1.46460783730408, 1.0, 1.387220146823, 1.51401000729362, 1.98058344620751, 1.87939168587699,
                  1.7222593588838, 2.02228445489326, 1.92692086621503, 2.08041972716723, 1.94496755678903,
                  2.14539112893591, 2.04277109036766, 2.24911493451185)
# SantaLucia 1998 unified DNA/DNA stacks (5'->3' top strand), dG37 kcal/mol
DNA_STACK = {
    "AA": -1.00, "TT": -1.00, "AT": -0.88, "TA": -0.58, "CA": -1.45, "TG": -1.45, "GT": -1.44, "AC": -1.44,
    "CT": -1.28, "AG": -1.28, "GA": -1.30, "TC": -1.30, "CG": -2.17, "GC": -2.24, "GG": -1.84, "CC": -1.84,
}


def have_vienna() -> bool:
    """True when the ViennaRNA Python bindings (``import RNA``) are installed."""
    try:
        import RNA  # noqa: F401
    except ImportError:
        return False
    return True


def binding_energy(spacer: str) -> float:
    """dG_bind (kcal/mol) of a 20-nt DNA spacer (protospacer, 5'->3', ACGT) and its perfect target."""
    import RNA

    if len(spacer) != len(HYBRID_WEIGHTS) + 1:
        raise ValueError(f"binding energy needs a {len(HYBRID_WEIGHTS) + 1}-nt spacer, got {len(spacer)}: {spacer}")
    rna = spacer.replace("T", "U")
    stacks = [RNA_DNA_STACK[rna[i:i + 2]] for i in range(len(rna) - 1)]
    stacks[0] += RNA_DNA_END_AT * (spacer[0] in "AT")
    stacks[-1] += RNA_DNA_END_AT * (spacer[-1] in "AT")
    hybrid = sum(w * e for w, e in zip(HYBRID_WEIGHTS, stacks))
    duplex = sum(DNA_STACK[spacer[i:i + 2]] for i in range(len(spacer) - 1))
    _, fold = RNA.fold(rna)
    return float(hybrid - duplex - fold)


def compute_energies(guides: str | os.PathLike, out: str | os.PathLike) -> np.ndarray:
    """Write ``energy.tsv`` (``id\tdg_bind``) for every guide of ``guides.tsv``.

    Returns
    -------
    ndarray, float, shape (n_guides,)
    """
    if not have_vienna():
        raise ImportError("the energy step needs the ViennaRNA Python bindings: pip install ViennaRNA==2.7.2, "
                          "or set crispr.energy.enabled: false")
    df = read_guides(guides)
    cache: dict[str, float] = {}
    values = np.array([cache.setdefault(s, binding_energy(s)) if s not in cache else cache[s]
                       for s in df.mer30.str[FLANK5:FLANK5 + SPACER]])
    with atomic_open(out) as fh:
        pd.DataFrame({"id": df.id, "dg_bind": values}).to_csv(fh, sep="\t", index=False, float_format="%.4f")
    log.info("binding energy of %d guides: mean %.2f, sd %.2f kcal/mol", len(values), values.mean(), values.std())
    return values
