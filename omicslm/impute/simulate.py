"""Simulate a 1000-Genomes-like reference panel with stdpopsim/msprime.

The default data of the workflow on a fresh machine: phased diploid genotypes for a
segment of a human chromosome under a published demographic model, written exactly
like real data (bgzipped, indexed VCF + a 1000 Genomes-format panel file), so every
later step treats it as it would treat a user's VCF. Nothing is downloaded: without
a genetic map, stdpopsim uses the contig's uniform recombination rate.
"""

from __future__ import annotations

import logging
import os
import time
import warnings

import numpy as np

from omicslm.io.atomic import atomic_open, atomic_path

log = logging.getLogger(__name__)


def simulate_tree_sequence(*, species, model, contig, left, length, populations, mutation_rate=None, seed):
    """Run stdpopsim's msprime engine; returns a ``tskit.TreeSequence`` with mutations."""
    import stdpopsim

    sp = stdpopsim.get_species(species)
    dem = sp.get_demographic_model(model)
    known = {p.name for p in dem.populations}
    unknown = sorted(set(populations) - known)
    if unknown:
        raise ValueError(f"model {model} has no population(s) {unknown}; it has {sorted(known)}")
    kwargs = {} if mutation_rate is None else {"mutation_rate": mutation_rate}
    ctg = sp.get_contig(contig, left=left, right=left + length, **kwargs)
    engine = stdpopsim.get_engine("msprime")
    with warnings.catch_warnings():
        # stdpopsim warns that the contig's mutation rate differs from the model's; the
        # contig's rate is the documented choice here (config: mutation_rate).
        warnings.simplefilter("ignore", UserWarning)
        return engine.simulate(dem, ctg, dict(populations), seed=seed)


def simulate_panel(
    out_vcf: str | os.PathLike,
    out_panel: str | os.PathLike,
    *,
    species: str = "HomSap",
    model: str = "OutOfAfrica_3G09",
    contig: str = "chr21",
    left: int = 10_000_000,
    length: int = 1_000_000,
    populations: dict[str, int],
    super_populations: dict[str, str] | None = None,
    mutation_rate: float | None = None,
    seed: int = 7,
) -> dict:
    """Simulate phased diploids and write ``out_vcf`` (+ ``.tbi``) and ``out_panel``.

    Parameters
    ----------
    populations : dict pop -> number of diploid samples, e.g. ``{"YRI": 100, "CEU": 100}``.
    super_populations : dict pop -> super-population label for the panel file.

    Sample names are ``<POP><index>`` (e.g. ``CEU0001``); the panel file has the
    1000 Genomes columns ``sample pop super_pop gender``. Sites hit by more than one
    mutation become multiallelic records, as in real data; ingest skips them.
    """
    import pysam

    t0 = time.perf_counter()
    ts = simulate_tree_sequence(
        species=species, model=model, contig=contig, left=left, length=length,
        populations=populations, mutation_rate=mutation_rate, seed=seed,
    )
    pop_names = [p.metadata["name"] for p in ts.populations()]
    counters: dict[str, int] = {}
    names, pops = [], []
    for ind in ts.individuals():
        pop = pop_names[ts.node(ind.nodes[0]).population]
        counters[pop] = counters.get(pop, 0) + 1
        names.append(f"{pop}{counters[pop]:04d}")
        pops.append(pop)
    super_populations = super_populations or {}
    rng = np.random.default_rng(seed)
    genders = rng.choice(["male", "female"], size=len(names))

    with atomic_path(out_vcf) as tmp_gz:
        plain = f"{tmp_gz}.plain.vcf"
        try:
            with open(plain, "w") as fh:
                ts.write_vcf(fh, contig_id=contig, individual_names=names, position_transform=lambda x: np.round(x).astype(int))
            pysam.tabix_compress(plain, str(tmp_gz), force=True)
        finally:
            if os.path.exists(plain):
                os.remove(plain)
        pysam.tabix_index(str(tmp_gz), preset="vcf", force=True)
        os.replace(f"{tmp_gz}.tbi", f"{out_vcf}.tbi")

    with atomic_open(out_panel) as fh:
        fh.write("sample\tpop\tsuper_pop\tgender\n")
        for name, pop, g in zip(names, pops, genders):
            fh.write(f"{name}\t{pop}\t{super_populations.get(pop, pop)}\t{g}\n")

    stats = {"n_samples": len(names), "n_sites": ts.num_sites, "seconds": time.perf_counter() - t0}
    log.info("simulated %d diploids x %d sites (%s, %s, %s:%d-%d) in %.1f s", len(names), ts.num_sites,
             species, model, contig, left, left + length, stats["seconds"])
    return stats
