"""Imputing a user's own targets: the inputs of the target mode and its scoring against truth.

The target mode (rules ``impute_targets_*``) takes an array VCF of a cohort (unphased, some
calls missing, alleles possibly swapped or on the other strand) and a phased reference panel
per chromosome, and writes one imputed, indexed VCF per chromosome and method:
QC (:mod:`omicslm.impute.target_qc`) -> phasing -> chunks (:mod:`omicslm.impute.chunks`) ->
every method per chunk -> the chunks' cores gathered.

:func:`write_heldout_targets` makes such inputs from the evaluation split, so a fresh clone runs
the whole path on the simulated panel: the held-out test samples' genotypes at the array sites,
written *unphased* as an array gives them, and their full genotypes as the truth.
:func:`evaluate_targets` scores a method's per-chromosome VCF against a truth VCF with the same
scoring code as the held-out evaluation (:func:`omicslm.impute.evaluate.score`).
"""

from __future__ import annotations

import logging
import os
import subprocess
from pathlib import Path
from typing import Sequence

import cyvcf2
import numpy as np
import pandas as pd

from omicslm.errors import InputError
from omicslm.impute.baselines import run_beagle, run_minimac4
from omicslm.impute.chunks import cut_core, read_chunks
from omicslm.impute.evaluate import ALL, score
from omicslm.impute.imputed_vcf import read_imputed
from omicslm.impute.layout import read_panel
from omicslm.impute.split import density_sites, read_array_sites, read_split, role_indices
from omicslm.io.atomic import atomic_open, atomic_path, scratch_dir
from omicslm.io.vcf import write_vcf

log = logging.getLogger(__name__)


def write_heldout_targets(h5, split_tsv, array_tsv, out_targets, out_truth, *, phased: bool) -> int:
    """Write the test samples as a user's targets: array sites (unphased unless ``phased``) + full truth.

    Returns the number of target samples.
    """
    panel = read_panel(h5)
    idx = role_indices(panel, read_split(split_tsv), ["test"])
    sites = read_array_sites(array_tsv, panel, h5)["idx"].to_numpy()
    samples = panel.samples[idx]
    write_vcf(out_targets, contig=panel.contig, positions=panel.pos[sites], ref=panel.ref[sites],
              alt=panel.alt[sites], samples=samples, haplotypes=panel.hap[np.ix_(sites, idx)],
              source="omicslm held-out targets (array sites)", phased=phased)
    write_vcf(out_truth, contig=panel.contig, positions=panel.pos, ref=panel.ref, alt=panel.alt, samples=samples,
              haplotypes=panel.hap[:, idx, :], source="omicslm held-out targets (truth)")
    log.info("held-out targets: %d samples x %d array sites (%s) -> %s; truth at %d sites -> %s", len(idx),
             len(sites), "phased" if phased else "unphased", out_targets, panel.n_variants, out_truth)
    return len(idx)


def _same_contig(a: str, b: str) -> bool:
    return a.removeprefix("chr") == b.removeprefix("chr")


def read_panel_sites(panel_vcf, chrom: str, *, snps_only: bool = False) -> pd.DataFrame:
    """Biallelic sites of a phased panel VCF on ``chrom``: ``pos, ref, alt, af`` (ALT frequency over its haplotypes).

    ``snps_only``: biallelic SNPs only (the sites our model imputes: its ingested panel holds no indels).
    """
    rows = []
    vcf = cyvcf2.VCF(str(panel_vcf), lazy=True)
    try:
        for rec in vcf:
            if not _same_contig(rec.CHROM, chrom) or len(rec.ALT) != 1:
                continue
            if snps_only and (len(rec.REF) != 1 or len(rec.ALT[0]) != 1):
                continue
            gt = rec.genotype.array()[:, :2]
            called = gt[gt >= 0]
            rows.append((rec.POS, rec.REF, rec.ALT[0], float(called.mean()) if called.size else np.nan))
    finally:
        vcf.close()
    if not rows:
        raise InputError(panel_vcf, f"no biallelic sites on contig {chrom!r}")
    return pd.DataFrame(rows, columns=["pos", "ref", "alt", "af"])


def read_truth(truth_vcf, sites: pd.DataFrame, samples: Sequence[str], chrom: str) -> tuple[np.ndarray, np.ndarray]:
    """ALT allele counts of ``samples`` at ``sites`` (same REF/ALT); sites absent or with a missing call are flagged.

    Returns
    -------
    truth : ndarray, int8, shape (n_sites, n_samples)
    complete : ndarray, bool, shape (n_sites,)
        The truth has the site with these alleles and every sample called.
    """
    key = {(int(p), r, a): i for i, (p, r, a) in enumerate(zip(sites["pos"], sites["ref"], sites["alt"]))}
    truth = np.zeros((len(sites), len(samples)), dtype=np.int8)
    complete = np.zeros(len(sites), dtype=bool)
    vcf = cyvcf2.VCF(str(truth_vcf), lazy=True)
    try:
        missing = [s for s in samples if s not in vcf.samples]
        if missing:
            raise InputError(truth_vcf, f"{len(missing)} target samples are not in the truth VCF, e.g. {missing[:3]}")
        col = np.array([vcf.samples.index(s) for s in samples])
        for rec in vcf:
            if not _same_contig(rec.CHROM, chrom) or len(rec.ALT) != 1:
                continue
            i = key.get((rec.POS, rec.REF, rec.ALT[0]))
            if i is None:
                continue
            gt = rec.genotype.array()[col, :2]
            if (gt < 0).any():
                continue
            truth[i], complete[i] = gt.sum(axis=1), True
    finally:
        vcf.close()
    return truth, complete


def scored_sites(sites: pd.DataFrame, typed: set[int], complete: np.ndarray) -> np.ndarray:
    """Mask of the panel ``sites`` a targets' evaluation scores: untyped in the targets, with a complete truth, and
    alone at their position (a position holding two records, a SNP and an indel, is not scored: read_imputed reads
    one record a position)."""
    shared = sites["pos"].duplicated(keep=False).to_numpy()
    return complete & ~sites["pos"].isin(typed).to_numpy() & ~shared


def evaluate_targets(imputed_vcf, truth_vcf, panel_vcf, qc_tsv, out_tsv, *, method: str, chrom: str,
                     bins: Sequence[float], n_boot: int, seed: int, snps_only: bool = False) -> pd.DataFrame:
    """Score one method's imputed VCF of ``chrom`` against the targets' truth, by panel-MAF bin.

    Scored: the panel sites that were not typed in the (QC'd) targets (``qc_tsv`` of
    :func:`omicslm.impute.target_qc.qc_targets`: rows with a kept action) and whose truth is
    complete. The table is that of :func:`omicslm.impute.evaluate.score` with ``method`` and
    ``chrom`` columns in front; written atomically to ``out_tsv``. ``snps_only``: score the panel's biallelic
    SNPs only (every method of a table with our model, which imputes no indels, is scored on the same sites).
    """
    sites = read_panel_sites(panel_vcf, chrom, snps_only=snps_only)
    qc = pd.read_csv(qc_tsv, sep="\t")
    typed = set(qc.loc[~qc["action"].isin(DROPPED_ACTIONS), "pos"].astype(int))
    probe = cyvcf2.VCF(str(imputed_vcf), lazy=True)
    samples = list(probe.samples)
    probe.close()
    truth, complete = read_truth(truth_vcf, sites, samples, chrom)
    shared = sites["pos"].duplicated(keep=False).to_numpy()
    scored = scored_sites(sites, typed, complete)
    if not scored.any():
        raise InputError(truth_vcf, f"no untyped panel site on {chrom} has a complete truth genotype to score")
    sel = sites[scored]
    dosage, gt = read_imputed(imputed_vcf, sel["pos"].to_numpy(), samples, ref=sel["ref"].tolist(),
                              alt=sel["alt"].tolist(), contig=None)
    table = score(truth[scored], dosage, gt, sel["af"].to_numpy(), bins=bins, n_boot=n_boot, seed=seed)
    table.insert(0, "chrom", chrom)
    table.insert(0, "method", method)
    with atomic_open(out_tsv) as fh:
        table.to_csv(fh, sep="\t", index=False)
    all_row = table.loc[table["bin"] == ALL].iloc[0]
    log.info("%s %s: r2 %.4f over %d untyped sites (%d typed, %d without complete truth, %d sharing a position), "
             "%d samples", method, chrom, all_row["r2"], int(scored.sum()), len(typed), int((~complete).sum()),
             int(shared.sum()), len(samples))
    return table


#: QC actions whose target site does not reach the imputation (see :mod:`omicslm.impute.target_qc`).
DROPPED_ACTIONS = ("multiallelic", "absent", "low_call_rate", "ambiguous")


def combine_target_tables(tsvs: Sequence[str | os.PathLike], out_tsv: str | os.PathLike) -> pd.DataFrame:
    """Concatenate per (method, chromosome) tables into ``results/impute_targets_eval.tsv``."""
    table = pd.concat([pd.read_csv(t, sep="\t") for t in tsvs], ignore_index=True)
    with atomic_open(out_tsv) as fh:
        table.to_csv(fh, sep="\t", index=False)
    return table


def impute_chunk(method: str, chunks_tsv, chunk: str, target_vcf, reference, out_vcf, *, genetic_map=None,
                 threads: int = 1, tool_log=None, **peer_options) -> float:
    """Impute one chunk (core + flanks) of the phased targets with a peer; keep only its core in ``out_vcf``.

    ``reference`` is the panel VCF for Beagle, the ``.msav`` for minimac4; ``peer_options``
    go to :func:`omicslm.impute.baselines.run_beagle` (mem_gb, ne, seed). Returns the tool's seconds.
    """
    chunks = read_chunks(chunks_tsv).set_index("chunk")
    if chunk not in chunks.index:
        raise InputError(chunks_tsv, f"no chunk {chunk!r}; the table has {list(chunks.index)}")
    row = chunks.loc[chunk]
    region = (str(row["contig"]), int(row["start"]), int(row["end"]))
    out_vcf = Path(out_vcf)
    out_vcf.parent.mkdir(parents=True, exist_ok=True)
    with scratch_dir(out_vcf) as tmp:
        whole = Path(tmp) / "chunk.vcf.gz"
        if method == "beagle":
            seconds = run_beagle(reference, target_vcf, whole, genetic_map=genetic_map, threads=threads, log=tool_log,
                                 region=region, **peer_options)
        elif method == "minimac4":
            seconds = run_minimac4(reference, target_vcf, whole, genetic_map=genetic_map, threads=threads,
                                   region=region)
        else:
            raise ValueError(f"unknown target method {method!r}")
        cut_core(whole, out_vcf, contig=region[0], core_start=int(row["core_start"]), core_end=int(row["core_end"]))
    log.info("%s %s: %s:%d-%d imputed in %.1f s, core %d-%d kept", method, chunk, *region, seconds,
             row["core_start"], row["core_end"])
    return seconds


def _first_contig_like(vcf, chrom: str) -> str:
    """How ``vcf`` names ``chrom`` (with or without ``chr``): the first record on it, read by streaming."""
    reader = cyvcf2.VCF(str(vcf), lazy=True)
    try:
        seen = []
        for rec in reader:
            if _same_contig(rec.CHROM, chrom):
                return rec.CHROM
            if rec.CHROM not in seen:
                seen.append(rec.CHROM)
    finally:
        reader.close()
    raise InputError(vcf, f"no records on {chrom} (contigs in the file: {seen})")


def thin_to_array(vcf, panel_vcf, out_vcf, *, chrom: str, min_maf: float, spacing_bp: int) -> int:
    """Keep only the density rule's array sites (panel SNPs, :func:`omicslm.impute.split.density_sites`) of ``vcf``.

    Makes array-like targets from whole-genome genotypes (config/1kg_chr20_targets.yaml); the
    genotypes, phased or not, are copied as they are. Written bgzipped + indexed, atomically.
    Returns the number of array positions asked for.
    """
    sites = read_panel_sites(panel_vcf, chrom)
    snp = (sites["ref"].str.len() == 1) & (sites["alt"].str.len() == 1)
    sites = sites[snp.to_numpy()].reset_index(drop=True)
    idx = density_sites(sites["pos"].to_numpy(), sites["af"].to_numpy(), min_maf=min_maf, spacing_bp=spacing_bp)
    if not len(idx):
        raise InputError(panel_vcf, f"no panel SNP on {chrom} passes the density rule (MAF >= {min_maf})")
    name = _first_contig_like(vcf, chrom)
    out_vcf = Path(out_vcf)
    out_vcf.parent.mkdir(parents=True, exist_ok=True)
    with scratch_dir(out_vcf) as tmp:
        regions = Path(tmp) / "array_sites.tsv"
        regions.write_text("".join(f"{name}\t{p}\n" for p in sites["pos"].to_numpy()[idx]))
        with atomic_path(out_vcf) as out:
            # -T streams the file (no index needed), keeping the records at those positions
            subprocess.run(["bcftools", "view", "-T", str(regions), "-m2", "-M2", "-v", "snps", "-Oz", "-o", str(out),
                            str(vcf)], check=True, capture_output=True)
            subprocess.run(["tabix", "-f", "-p", "vcf", str(out)], check=True, capture_output=True)
            Path(str(out) + ".tbi").replace(str(out_vcf) + ".tbi")
    log.info("%s: %d array sites of the density rule (panel SNP MAF >= %g, one per %d bp) kept -> %s", vcf, len(idx),
             min_maf, spacing_bp, out_vcf)
    return len(idx)


def targets_array_sites(h5, targets_vcf, out_tsv) -> pd.DataFrame:
    """The array a model trained on a reference panel of your own shows its queries: the (phased, QC'd) targets'
    sites that are sites of the ingested panel ``h5`` (same position and alleles), as ``pos idx``.

    Target sites the ingested panel lacks (below ``impute.ingest.min_maf``, or multiallelic in the panel) are
    counted in the log; InputError when none is left.
    """
    panel = read_panel(h5, haplotypes=False)
    index_of = {(int(p), r, a): i for i, (p, r, a) in enumerate(zip(panel.pos, panel.ref, panel.alt))}
    idx, absent = [], 0
    reader = cyvcf2.VCF(str(targets_vcf))
    for rec in reader:
        i = index_of.get((rec.POS, rec.REF, rec.ALT[0] if len(rec.ALT) == 1 else None))
        if i is None:
            absent += 1
        else:
            idx.append(i)
    reader.close()
    if not idx:
        raise InputError(targets_vcf, f"no target site is a site of the ingested panel {h5} ({absent} absent)")
    idx = np.unique(np.array(idx, dtype=np.int64))
    df = pd.DataFrame({"pos": panel.pos[idx].astype(np.int64), "idx": idx})
    with atomic_open(out_tsv) as fh:
        df.to_csv(fh, sep="\t", index=False)
    log.info("array of the model: %d target sites of %s are panel sites, %d are not (not shown to the model)",
             len(df), targets_vcf, absent)
    return df
