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

from omicslm.io.atomic import atomic_indexed, atomic_open

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

    t0 = time.perf_counter()
    ts = simulate_tree_sequence(
        species=species, model=model, contig=contig, left=left, length=length,
        populations=populations, mutation_rate=mutation_rate, seed=seed,
    )
    names, pops = _individual_names(ts)
    super_populations = super_populations or {}
    rng = np.random.default_rng(seed)
    genders = rng.choice(["male", "female"], size=len(names))
    _write_vcf(ts, out_vcf, contig=contig, names=names)

    with atomic_open(out_panel) as fh:
        fh.write("sample\tpop\tsuper_pop\tgender\n")
        for name, pop, g in zip(names, pops, genders):
            fh.write(f"{name}\t{pop}\t{super_populations.get(pop, pop)}\t{g}\n")

    stats = {"n_samples": len(names), "n_sites": ts.num_sites, "seconds": time.perf_counter() - t0}
    log.info("simulated %d diploids x %d sites (%s, %s, %s:%d-%d) in %.1f s", len(names), ts.num_sites,
             species, model, contig, left, left + length, stats["seconds"])
    return stats


def _individual_names(ts) -> tuple[list[str], list[str]]:
    """``<POP><index>`` name (e.g. ``CEU0001``) and population of every individual of ``ts``, in its order."""
    pop_names = [p.metadata["name"] for p in ts.populations()]
    counters: dict[str, int] = {}
    names, pops = [], []
    for ind in ts.individuals():
        pop = pop_names[ts.node(ind.nodes[0]).population]
        counters[pop] = counters.get(pop, 0) + 1
        names.append(f"{pop}{counters[pop]:04d}")
        pops.append(pop)
    return names, pops


def _write_vcf(ts, out_vcf, *, contig: str, names: list[str], individuals=None, unphased: bool = False) -> None:
    """bgzipped, tabix-indexed VCF of ``ts`` (the ``individuals`` given, all by default), atomically; ``unphased``
    writes every genotype with ``/`` as a genotyping array reports it."""
    import pysam

    idx = np.arange(ts.num_individuals) if individuals is None else np.asarray(individuals)
    with atomic_indexed(out_vcf) as tmp_gz:
        plain = f"{tmp_gz}.plain.vcf"
        try:
            with open(plain, "w") as fh:
                ts.write_vcf(fh, contig_id=contig, individuals=idx, individual_names=[names[i] for i in idx],
                             position_transform=lambda x: np.round(x).astype(int))
            if unphased:
                _unphase(plain)
            pysam.tabix_compress(plain, str(tmp_gz), force=True)
        finally:
            if os.path.exists(plain):
                os.remove(plain)
        pysam.tabix_index(str(tmp_gz), preset="vcf", force=True)


def _unphase(plain_vcf: str) -> None:
    """Rewrite a plain VCF in place with unphased genotypes (``0|1`` -> ``0/1`` in the sample columns)."""
    tmp = f"{plain_vcf}.unphased"
    with open(plain_vcf) as src, open(tmp, "w") as dst:
        for line in src:
            if not line.startswith("#"):
                fixed, samples = line.split("\t", 9)[:9], line.split("\t", 9)[9]
                line = "\t".join(fixed) + "\t" + samples.replace("|", "/")
            dst.write(line)
    os.replace(tmp, plain_vcf)


def target_sample_names(populations: dict[str, int], targets_per_population: int) -> tuple[list[str], list[str]]:
    """The simulated samples (``<POP><index>``) that :func:`simulate_target_files` makes targets (the last
    ``targets_per_population`` of each population) and those it keeps in the reference panel."""
    targets, reference = [], []
    for pop, n in populations.items():
        if targets_per_population >= n:
            raise ValueError(f"targets_per_population {targets_per_population} leaves no reference sample of {pop} "
                             f"({n} simulated)")
        names = [f"{pop}{i:04d}" for i in range(1, n + 1)]
        reference += names[:n - targets_per_population]
        targets += names[n - targets_per_population:]
    return targets, reference


def write_target_panel(out_panel, *, populations: dict[str, int], targets_per_population: int,
                       super_populations: dict[str, str] | None = None) -> None:
    """Population file (``sample pop super_pop``) of the reference samples of :func:`simulate_target_files`."""
    super_populations = super_populations or {}
    with atomic_open(out_panel) as fh:
        fh.write("sample\tpop\tsuper_pop\n")
        for pop, n in populations.items():
            _, reference = target_sample_names({pop: n}, targets_per_population)
            for name in reference:
                fh.write(f"{name}\t{pop}\t{super_populations.get(pop, pop)}\n")


def simulate_target_files(out_ref, out_targets, out_truth, *, contig: str, left: int, length: int,
                          populations: dict[str, int], targets_per_population: int, seed: int,
                          species: str = "HomSap", model: str = "OutOfAfrica_3G09",
                          mutation_rate: float | None = None) -> dict:
    """Simulate one chromosome of the files a user brings to ``impute_targets_all``: a phased reference panel
    (``out_ref``), the targets' genotypes unphased as an array reports them (``out_targets``; the workflow
    reduces them to array sites) and their phased truth (``out_truth``). Each is a bgzipped, indexed VCF.

    The targets are the last ``targets_per_population`` samples of each population
    (:func:`target_sample_names`); every chromosome has the same samples, simulated independently
    (unlinked chromosomes), with ``seed`` per chromosome.
    """
    t0 = time.perf_counter()
    ts = simulate_tree_sequence(species=species, model=model, contig=contig, left=left, length=length,
                                populations=populations, mutation_rate=mutation_rate, seed=seed)
    names, _ = _individual_names(ts)
    targets, _ = target_sample_names(populations, targets_per_population)
    is_target = np.isin(names, targets)
    _write_vcf(ts, out_ref, contig=contig, names=names, individuals=np.flatnonzero(~is_target))
    _write_vcf(ts, out_targets, contig=contig, names=names, individuals=np.flatnonzero(is_target), unphased=True)
    _write_vcf(ts, out_truth, contig=contig, names=names, individuals=np.flatnonzero(is_target))
    stats = {"n_reference": int((~is_target).sum()), "n_targets": int(is_target.sum()), "n_sites": ts.num_sites,
             "seconds": time.perf_counter() - t0}
    log.info("simulated %s:%d-%d: %d reference samples, %d targets, %d sites in %.1f s", contig, left, left + length,
             stats["n_reference"], stats["n_targets"], ts.num_sites, stats["seconds"])
    return stats
