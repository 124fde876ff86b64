"""A small msprime panel + array targets written as VCFs: the fixture of the peer and chunk tests."""

from __future__ import annotations

import msprime
import numpy as np

from omicslm.io.vcf import write_vcf


def simulate_panel_and_targets(d, *, n_panel: int, n_target: int, length: int, typed_every: int, contig: str) -> dict:
    """``n_panel + n_target`` msprime diploids over ``length`` bp (biallelic sites); targets typed at every
    ``typed_every``-th site. Writes ``d/panel.vcf.gz`` and ``d/target.vcf.gz`` (phased).

    Returns ``dict(pos, ref, alt, hap, names, typed, panel_vcf, target_vcf)``; ``hap`` int8 (n_sites, n_samples, 2).
    """
    ts = msprime.sim_ancestry(samples=n_panel + n_target, sequence_length=length, recombination_rate=1e-8,
                              population_size=10_000, random_seed=1)
    ts = msprime.sim_mutations(ts, rate=2e-8, random_seed=1)
    pos, ref, alt, gts = [], [], [], []
    for v in ts.variants():
        if len(v.alleles) != 2 or None in v.alleles:
            continue
        pos.append(int(v.site.position) + 1)  # msprime is 0-based, VCF 1-based
        ref.append(v.alleles[0])
        alt.append(v.alleles[1])
        gts.append(v.genotypes)
    hap = np.array(gts, dtype=np.int8).reshape(len(pos), n_panel + n_target, 2)
    pos = np.array(pos)
    names = [f"S{i:03d}" for i in range(n_panel + n_target)]
    typed = np.arange(0, len(pos), typed_every)
    panel_vcf = write_vcf(d / "panel.vcf.gz", contig=contig, positions=pos, ref=ref, alt=alt,
                          samples=names[:n_panel], haplotypes=hap[:, :n_panel])
    target_vcf = write_vcf(d / "target.vcf.gz", contig=contig, positions=pos[typed], ref=[ref[i] for i in typed],
                           alt=[alt[i] for i in typed], samples=names[n_panel:], haplotypes=hap[typed, n_panel:])
    return dict(pos=pos, ref=ref, alt=alt, hap=hap, names=names, typed=typed, panel_vcf=panel_vcf,
                target_vcf=target_vcf)
