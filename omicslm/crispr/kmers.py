"""23mer / 30mer target-site extraction with CRISPRon's window and id scheme.

A SpCas9 site is a 20-nt protospacer followed by an NGG PAM (the 23mer); the 30mer adds
4 nt upstream and 3 nt downstream, the context CRISPRon and Azimuth score. Windows are
taken on both strands; a window whose 30mer does not fit inside the sequence is not
reported (for its 23mer either), as in CRISPRon's ``get30mers``.

Ids are ``<name>_p_<pos>`` / ``<name>_m_<pos>`` where ``pos`` is the 1-based forward-strand
coordinate of the leftmost base of the 23mer's footprint; records come per sequence,
plus-strand sites left to right, then minus-strand sites in the order they appear on
the reverse complement.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Iterator

from omicslm.crispr.fasta import read_fasta, revcomp, write_fasta

log = logging.getLogger(__name__)

SPACER = 20
PAM = 3
FLANK5 = 4
FLANK3 = 3
SITE = SPACER + PAM                    # 23mer
CONTEXT = FLANK5 + SITE + FLANK3       # 30mer


@dataclass(frozen=True)
class Site:
    """One SpCas9 site: id, strand ("p"/"m"), 1-based forward position, its 23mer and 30mer."""

    id: str
    strand: str
    pos: int
    mer23: str
    mer30: str


def iter_sites(name: str, seq: str) -> Iterator[Site]:
    """Yield every NGG site of ``seq`` (upper-case) whose 30mer context lies inside it, CRISPRon order."""
    n = len(seq)
    for strand, s in (("p", seq), ("m", revcomp(seq))):
        for i in range(FLANK5, n - SITE - FLANK3 + 1):
            if s[i + SPACER + 1:i + SITE] != "GG":
                continue
            pos = i + 1 if strand == "p" else n - i - SITE + 1
            yield Site(f"{name}_{strand}_{pos}", strand, pos, s[i:i + SITE], s[i - FLANK5:i + SITE + FLANK3])


def extract_mers(fasta: str | os.PathLike, out_23: str | os.PathLike, out_30: str | os.PathLike,
                 *, on_bad_record: str = "error") -> int:
    """Write the 23mers and 30mers of every record of ``fasta`` (same ids, same order).

    Parameters
    ----------
    fasta : path
        DNA records; non-ACGT records raise ``InputError`` or are skipped (``on_bad_record``).
    out_23, out_30 : path
        Written atomically, one sequence line per record.

    Returns
    -------
    int
        Number of sites written.
    """
    records = read_fasta(fasta, on_bad_record=on_bad_record)
    sites = [site for name, seq in records.items() for site in iter_sites(name, seq)]
    write_fasta(out_23, ((s.id, s.mer23) for s in sites))
    write_fasta(out_30, ((s.id, s.mer30) for s in sites))
    log.info("%s: %d sites (23/30mers) from %d sequences", fasta, len(sites), len(records))
    return len(sites)
