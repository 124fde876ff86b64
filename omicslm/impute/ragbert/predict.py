"""Impute target samples with a trained retrieval-augmented BERT checkpoint (training: :mod:`omicslm.impute.ragbert.train`).

The target VCF holds phased haplotypes at the array sites; the retrieval panel and the site
features use the reference + validation samples, never the targets. A site covered by several
windows gets the mean of their ALT probabilities, and the imputed VCF is built from the
per-haplotype ALT probabilities (phased GT, DS = p1 + p2, GP from p1 and p2), so GT, DS and GP
always agree. A checkpoint made on another panel is an :class:`~omicslm.errors.InputError`.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from tqdm import tqdm

from omicslm.errors import InputError
from omicslm.impute.imputed_vcf import write_imputed_vcf
from omicslm.impute.layout import Panel, read_panel
from omicslm.impute.ragbert.batches import WindowData, panel_site_stats
from omicslm.impute.ragbert.composite import copying_device
from omicslm.impute.ragbert.model_config import ModelConfig
from omicslm.impute.ragbert.windows import file_sha1, panel_fingerprint, read_windows, window_data
from omicslm.impute.split import read_split, role_indices
from omicslm.io.runtime import write_runtime
from omicslm.train.checkpoint_files import read_checkpoint_config

if TYPE_CHECKING:
    import torch

    from omicslm.impute.ragbert.model import RagBert

log = logging.getLogger(__name__)


def predict_alt_prob(model: RagBert, data: WindowData, *, batch_size: int, device: torch.device,
                     amp: bool = True, cpu_bf16: bool = False, desc: str = "impute",
                     skip_confident: float = 0.0) -> np.ndarray:
    """ALT probability of every query haplotype at every site, averaged over covering windows.

    ``amp``: bf16 autocast on CUDA; ``cpu_bf16``: bf16 autocast on a CPU with native bf16
    (:func:`~omicslm.train.device.inference_autocast`).

    ``skip_confident`` (> 0, with the copying model): a (window, sample) whose copying-model ALT
    probability is within this of 0 or 1 at every non-array site of the window, on both haplotypes,
    takes that probability and is not run through the network, which learns a correction of it
    (:func:`confident_pairs`); the network's cost then follows the copying model's uncertainty.

    Returns
    -------
    ndarray, float32, shape (n_variants, n_query_haplotypes)
    """
    import torch

    from omicslm.train.device import inference_autocast, to_device

    was_training = model.training
    model.eval()
    n_var, n_hap = data.query_hap.shape
    total = np.zeros((n_var, n_hap), dtype=np.float64)
    count = np.zeros(n_var, dtype=np.int64)
    for s, e in data.windows:
        count[s:e] += 1
    pairs = data.items()
    if skip_confident > 0 and data.copy_prob is not None:
        sure = confident_pairs(data, skip_confident)
        hap_sure = np.repeat(sure, 2, axis=1)  # (windows, haplotypes)
        for w, (s, e) in enumerate(data.windows):
            if hap_sure[w].any():
                total[s:e, hap_sure[w]] += data.copy_prob[s:e, hap_sure[w]]
        log.info("%s: %d of %d (window, sample) pairs are certain under the copying model (within %g of 0 or 1): "
                 "the network runs on the other %d", desc, int(sure.sum()), sure.size, skip_confident,
                 int((~sure).sum()))
        pairs = pairs[~sure.ravel()]
    n_batches = (len(pairs) + max(1, batch_size // 2) - 1) // max(1, batch_size // 2)
    for batch in tqdm(data.iter_batches(pairs, batch_size), total=n_batches, desc=desc, unit="batch",
                      mininterval=5, leave=False):
        sites = batch["sites"].numpy()
        hap = batch["hap"].numpy()
        with torch.no_grad(), inference_autocast(device, amp=amp, cpu_bf16=cpu_bf16):
            out = model(to_device(batch, device))
        p = torch.softmax(out["allele_logits"].float(), dim=-1)[..., 1].cpu().numpy()
        ok = sites >= 0
        rows = np.broadcast_to(hap[:, None], sites.shape)
        np.add.at(total, (sites[ok], rows[ok]), p[ok])
    model.train(was_training)
    return (total / count[:, None]).astype(np.float32)


def confident_pairs(data: WindowData, within: float) -> np.ndarray:
    """(n_windows, n_query_samples) bool: both haplotypes' copying-model ALT probability within ``within`` of 0 or 1
    at every non-array site of the window (``data.items()`` order, window-major)."""
    n_samp = data.query_hap.shape[1] // 2
    sure = np.ones((len(data.windows), n_samp), dtype=bool)
    untyped = ~np.asarray(data.observed, dtype=bool)
    for w, (s, e) in enumerate(data.windows):
        p = data.copy_prob[s:e][untyped[s:e]]
        if len(p):
            unsure = (np.minimum(p, 1.0 - p) > within).any(axis=0)  # (haplotypes,)
            sure[w] = ~unsure.reshape(n_samp, 2).any(axis=1)
    return sure


def read_targets(targets_vcf, panel: Panel, *, skip_absent: bool = False) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Phased target haplotypes at their (array) sites, mapped onto the panel's sites.

    ``skip_absent``: a target site the ingested panel lacks (e.g. below ``impute.ingest.min_maf``) is skipped and
    counted in the log instead of being an error (targets already QC'd against the panel's VCF).

    Returns
    -------
    site_idx : ndarray, int64, shape (n_target_sites,) panel site index of each record
    hap : ndarray, int8, shape (n_target_sites, n_samples, 2)
    samples : list of str

    Raises
    ------
    InputError
        A record is not a panel site (position or alleles differ), a genotype is missing,
        unphased or not biallelic, or the VCF is unreadable.
    """
    import cyvcf2

    try:
        reader = cyvcf2.VCF(str(targets_vcf))
    except (OSError, IOError) as exc:
        raise InputError(targets_vcf, f"cannot open target VCF ({exc})") from exc
    samples = list(reader.samples)
    site_idx, rows, skipped = [], [], 0
    for rec in reader:
        where = f"{rec.CHROM}:{rec.POS}"
        i = int(np.searchsorted(panel.pos, rec.POS))
        if i >= panel.n_variants or panel.pos[i] != rec.POS:
            if skip_absent:
                skipped += 1
                continue
            raise InputError(targets_vcf, "target site is not a site of the reference panel", where)
        if rec.REF != panel.ref[i] or rec.ALT != [panel.alt[i]]:
            raise InputError(targets_vcf, f"alleles {rec.REF}>{','.join(rec.ALT)} differ from the panel's "
                                          f"{panel.ref[i]}>{panel.alt[i]}", where)
        g = rec.genotype.array()  # (n_samples, 3): allele, allele, phased
        if (g[:, :2] < 0).any() or (g[:, :2] > 1).any():
            raise InputError(targets_vcf, "missing or non-biallelic genotype", where)
        if not g[:, 2].all():
            bad = samples[int(np.argmin(g[:, 2]))]
            raise InputError(targets_vcf, f"unphased genotype of sample {bad} (the model needs phased targets)", where)
        site_idx.append(i)
        rows.append(g[:, :2].astype(np.int8))
    reader.close()
    if skipped:
        log.info("%s: %d target sites are not sites of the ingested panel (skipped), %d kept", targets_vcf, skipped,
                 len(rows))
    if not rows:
        raise InputError(targets_vcf, "target VCF has no records" + (" at sites of the panel" if skipped else ""))
    site_idx = np.array(site_idx, dtype=np.int64)
    if np.any(np.diff(site_idx) <= 0):
        raise InputError(targets_vcf, "records are not sorted by position or a position repeats")
    return site_idx, np.stack(rows), samples


def load_model(checkpoint_dir, panel: Panel) -> tuple[RagBert | None, dict]:
    """Rebuild a model from its checkpoint; InputError when it was trained on another panel.

    A variant without a network (``network: false``, the copying model alone) has no weights: None and its config.
    """
    checkpoint_dir = Path(checkpoint_dir)
    config = read_checkpoint_config(checkpoint_dir)
    for key in ("model", "panel", "options"):
        if key not in config:
            raise InputError(checkpoint_dir / "config.json", f"not a ragbert checkpoint (no {key!r} in its config)")
    have = panel_fingerprint(panel)
    panels = config.get("panels") or [config["panel"]]  # one per contig the model was trained on
    want = next((fp for fp in panels if fp.get("contig") == have.get("contig")), panels[0])
    diff = [k for k in sorted(set(want) | set(have)) if want.get(k) != have.get(k)]
    if diff:
        shown = ", ".join(f"{k}: checkpoint {want.get(k)!r} vs panel {have.get(k)!r}" for k in diff if k != "populations")
        raise InputError(checkpoint_dir / "config.json", f"checkpoint was trained on another panel ({shown or diff}); "
                                                         f"retrain the model on this panel")
    if not config["options"].get("network", True):
        return None, config
    from omicslm.impute.ragbert.model import RagBert  # torch: only a model with a network imports it
    from omicslm.train.checkpoint import load_checkpoint

    try:
        model = RagBert(ModelConfig.from_dict(config["model"]))
    except (TypeError, ValueError) as exc:
        raise InputError(checkpoint_dir / "config.json", f"invalid model config ({exc})") from None
    load_checkpoint(checkpoint_dir, model=model, restore_rng=False)
    return model, config


def _check_genetic_map(config: dict, checkpoint_dir, genetic_map, *, copying: bool, contig: str | None = None) -> None:
    """InputError unless ``genetic_map`` is the map (or lack of one) the copying model was trained with on
    ``contig`` (a checkpoint trained across contigs records one map per contig)."""
    trained_map = (config.get("genetic_map_sha1s") or {}).get(contig, config.get("genetic_map_sha1"))
    if copying and "genetic_map_sha1" in config and trained_map != file_sha1(genetic_map):
        had = "a different genetic map" if trained_map and genetic_map else "a genetic map" if trained_map else "none"
        raise InputError(Path(checkpoint_dir) / "config.json",
                         f"the copying model was trained with {had}, this run gives {genetic_map or 'none'}; "
                         f"retrain, or pass the map it was trained with")


def infer_populations(target_hap: np.ndarray, af_pop: np.ndarray, *, eps: float = 1e-3) -> np.ndarray:
    """The most likely panel population of each target from its alleles at its own (array) sites.

    Parameters
    ----------
    target_hap : int8 (n_sites, n_samples, 2)
    af_pop : float (n_sites, n_pops) ALT frequency of each population of the retrieval panel at those sites

    Returns
    -------
    int64 (n_samples,): argmax over populations of sum log P(allele | population AF) over both haplotypes
    (Hardy-Weinberg, sites independent; AF clipped to [eps, 1 - eps]).
    """
    f = np.clip(af_pop.astype(np.float64), eps, 1 - eps)
    alt = target_hap.sum(axis=2).astype(np.float64)  # (n_sites, n_samples)
    loglik = alt.T @ np.log(f) + (2 - alt).T @ np.log(1 - f)  # (n_samples, n_pops)
    return np.argmax(loglik, axis=1).astype(np.int64)


def _target_populations(targets_vcf, panel: Panel, samples: list[str], panel_idx: np.ndarray,
                        target_hap: np.ndarray, site_idx: np.ndarray) -> np.ndarray:
    """Population index of every target: its panel label where the HDF5 holds the sample (not in the retrieval
    panel: InputError, it would retrieve its own haplotypes), else inferred (:func:`infer_populations`) from the
    retrieval panel's population frequencies at the target's sites."""
    index_of = {s: i for i, s in enumerate(panel.samples)}
    known = np.array([s in index_of for s in samples], dtype=bool)
    leaked = {index_of[s] for s in samples if s in index_of} & set(panel_idx.tolist())
    if leaked:
        raise InputError(targets_vcf, "target sample is also a reference-panel sample in the split",
                         panel.samples[min(leaked)])
    pops = np.zeros(len(samples), dtype=np.int64)
    pops[known] = panel.pop[[index_of[s] for s in np.asarray(samples)[known]]]
    stats = panel_site_stats(panel.hap[site_idx], panel.pop, panel_idx, len(panel.populations))
    inferred = infer_populations(target_hap, stats.af_pop)
    if known.any():
        agree = float((inferred[known] == pops[known]).mean())
        log.info("population of %d targets from the panel file; inferred from their alleles for %d (on the labelled "
                 "ones the inference agrees with the label for %.1f%%)", int(known.sum()), int((~known).sum()),
                 100 * agree)
    if not known.all():
        pops[~known] = inferred[~known]
        counts = np.bincount(inferred[~known], minlength=len(panel.populations))
        log.info("inferred populations of %d targets: %s", int((~known).sum()),
                 ", ".join(f"{panel.populations[i]} {c}" for i, c in enumerate(counts) if c))
    return pops


def _target_queries(targets_vcf, panel: Panel, panel_idx: np.ndarray, *, skip_absent: bool, populations: bool):
    """The targets as queries: (site_idx, target_hap, samples) of :func:`read_targets`, the observed-site mask, the
    targets' populations (zeros when ``populations`` is false: the copying model alone reads none) and their
    haplotypes over every panel site (n_variants, 2 x samples; 0 at the untyped sites)."""
    site_idx, target_hap, samples = read_targets(targets_vcf, panel, skip_absent=skip_absent)
    observed = np.zeros(panel.n_variants, dtype=bool)
    observed[site_idx] = True
    if populations:
        query_pop = _target_populations(targets_vcf, panel, samples, panel_idx, target_hap, site_idx)
    else:
        query_pop = np.zeros(len(samples), dtype=panel.pop.dtype)
    query_hap = np.zeros((panel.n_variants, 2 * len(samples)), dtype=np.int8)
    query_hap[site_idx] = target_hap.reshape(len(site_idx), -1)
    return site_idx, target_hap, samples, observed, query_pop, query_hap


def _record_runtime(runtime_json, train_runtime_json, *, method: str, seconds: float, threads: int, device) -> None:
    """``runtime_json`` of an imputation, with the training run's ``train_seconds`` when its runtime is given."""
    extra = {"device": str(device)}
    if train_runtime_json is not None:
        with open(train_runtime_json) as fh:
            extra["train_seconds"] = float(json.load(fh)["train_seconds"])
    write_runtime(runtime_json, method=method, seconds=seconds, threads=threads, **extra)


def _imputation_device(model: RagBert | None, device: str, threads: int):
    """Where the imputation runs, with ``model`` (if any) moved there and torch on ``threads`` threads; the copying
    model alone (None) imports no torch unless it may run on CUDA (:func:`copying_device`)."""
    if model is None:
        return copying_device(device)
    import torch

    from omicslm.train.device import pick_device

    torch.set_num_threads(max(1, int(threads)))
    dev = pick_device(device)
    model.to(dev)
    return dev


def impute_ragbert(h5, split_tsv, targets_vcf, windows_tsv, checkpoint_dir, out_vcf, runtime_json, *, method: str,
                   batch_size: int, threads: int = 1, device: str = "auto", train_runtime_json=None,
                   genetic_map=None, skip_absent: bool = False, cpu_bf16: bool = False,
                   skip_confident: float = 0.0) -> float:
    """Impute the target samples with a trained checkpoint; write the imputed VCF and runtime.

    Parameters
    ----------
    h5 : path
        Ingested panel; the retrieval panel and site features use roles reference + validation.
    split_tsv : path
    targets_vcf : path
        Phased target haplotypes at the array sites (the same file the peers get).
    windows_tsv : path
    checkpoint_dir : path
        ``best/`` of :func:`train_ragbert`.
    out_vcf : path
        Bgzipped, indexed VCF of every panel site x target sample: GT (phased), DS, GP, HDS;
        INFO AF, R2, and the flag TYPED at array sites (which carry their observed genotypes) or IMP elsewhere.
    runtime_json : path
        ``{"method", "seconds" (inference), "threads", "device", "train_seconds"}``.
    method : str
    batch_size : int
        Haplotype rows per forward pass.
    threads : int
    device : str
        ``auto`` | ``cpu`` | ``cuda``.
    train_runtime_json : path, optional
        ``train_runtime.json`` of the training run, for ``train_seconds``.
    genetic_map : path, optional
        PLINK map of the copying model; must be the one the model was trained with.
    skip_absent : bool
        Skip target sites the ingested panel lacks (:func:`read_targets`) instead of stopping. Targets need not be
        samples of the HDF5: a target it lacks gets the population its alleles fit best (:func:`infer_populations`).
    skip_confident : float
        ``impute.model.predict_skip_confident``: the network runs only on (window, sample) pairs the copying
        model is not sure of (:func:`predict_alt_prob`); 0: on every pair.
    cpu_bf16 : bool
        The network in bf16 on a CPU with native bf16 (``impute.model.predict_cpu_bf16``; on CUDA bf16 follows the
        model's ``train.amp``).

    Returns
    -------
    float
        Inference seconds.
    """
    started = time.perf_counter()
    panel = read_panel(h5)
    split = read_split(split_tsv)
    panel_idx = role_indices(panel, split, ["reference", "validation"])
    model, config = load_model(checkpoint_dir, panel)
    mcfg = ModelConfig.from_dict(config["model"])
    dev = _imputation_device(model, device, threads)
    cfg = config["options"]
    _check_genetic_map(config, checkpoint_dir, genetic_map, copying=mcfg.copying, contig=panel.contig)
    site_idx, target_hap, samples, observed, query_pop, query_hap = _target_queries(
        targets_vcf, panel, panel_idx, skip_absent=skip_absent, populations=model is not None)
    windows = read_windows(windows_tsv, panel.n_variants)
    if (windows[:, 1] - windows[:, 0]).max() > mcfg.window_sites:
        raise InputError(windows_tsv, f"windows are longer than the model's {mcfg.window_sites} sites")
    data = window_data(panel, windows, observed, query_pop=query_pop, query_hap=query_hap, labels=False,
                        panel_idx=panel_idx, cfg=cfg, exclude_self=False, seed=int(cfg["train"]["seed"]),
                        threads=threads, window_sites=mcfg.window_sites, genetic_map=genetic_map, device=dev,
                        network=model is not None)
    if model is None:  # the copying model alone: its ALT probability is the answer
        p = np.asarray(data.copy_prob, dtype=np.float32)
    else:
        p = predict_alt_prob(model, data, batch_size=batch_size, device=dev, amp=bool(cfg["train"].get("amp", True)),
                             cpu_bf16=cpu_bf16, skip_confident=skip_confident)
    p = p.reshape(panel.n_variants, len(samples), 2)
    p[site_idx] = target_hap  # array sites carry their observed alleles
    write_imputed_vcf(out_vcf, panel, samples, p, observed, method=method, threads=threads)
    seconds = time.perf_counter() - started
    _record_runtime(runtime_json, train_runtime_json, method=method, seconds=seconds, threads=threads, device=dev)
    log.info("%s: imputed %d samples x %d sites in %.1f s on %s", method, len(samples), panel.n_variants, seconds, dev)
    return seconds
