"""CRISPRoff-style gRNA–target binding free energy (kcal/mol, 37 °C) of each site.

Following CRISPRoff (Alkan et al. 2018), binding is the RNA–DNA hybrid formation,
paid for by opening the target DNA duplex and unfolding the gRNA spacer:

    dG_bind = dG_hybrid(RNA:DNA) - dG_duplex(DNA:DNA) - dG_fold(gRNA)

``dG_hybrid`` uses the Sugimoto et al. (1995) RNA/DNA nearest-neighbour stacks,
``dG_duplex`` the SantaLucia (1998) unified DNA stacks and ``dG_fold`` is the ViennaRNA
minimum free energy of the spacer RNA (``RNA.fold``; the PyPI wheel ships no RNAfold
program). More negative = stronger binding. This is an approximation of CRISPRoff's
energy model (no position weights, no mismatches: on-target sites are perfect matches).
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
RNA_DNA_INIT = 3.1
# SantaLucia 1998 unified DNA/DNA stacks (5'->3' top strand), dG37 kcal/mol
DNA_STACK = {
    "AA": -1.00, "TT": -1.00, "AT": -0.88, "TA": -0.58, "CA": -1.45, "TG": -1.45, "GT": -1.44, "AC": -1.44,
    "CT": -1.28, "AG": -1.28, "GA": -1.30, "TC": -1.30, "CG": -2.17, "GC": -2.24, "GG": -1.84, "CC": -1.84,
}
DNA_INIT = 1.96


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

    rna = spacer.replace("T", "U")
    hybrid = RNA_DNA_INIT + sum(RNA_DNA_STACK[rna[i:i + 2]] for i in range(len(rna) - 1))
    duplex = DNA_INIT + sum(DNA_STACK[spacer[i:i + 2]] for i in range(len(spacer) - 1))
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
