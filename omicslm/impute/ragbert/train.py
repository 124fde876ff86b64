"""Train the retrieval-augmented BERT imputer (inference: :mod:`omicslm.impute.ragbert.predict`).

Data roles (``split.tsv``) keep the test samples out of everything the model sees:

==============  ==================================  ==========================  ======================
step            queries (masked like the targets)   retrieval panel             site features (AF...)
==============  ==================================  ==========================  ======================
training        reference haplotypes                reference (minus self and   reference samples
                                                    partner)
validation      validation haplotypes               reference                   reference samples
inference       test haplotypes (target VCF)        reference + validation      reference + validation
==============  ==================================  ==========================  ======================

Queries show the model only their genotyping-array sites (training adds a curriculum of
extra shown sites in early epochs). A site covered by several windows gets the mean of
their ALT probabilities. The imputed VCF is built from the per-haplotype ALT
probabilities (phased GT, DS = p1 + p2, GP from p1 and p2); the genotype-class head is an
auxiliary training signal only, so GT, DS and GP always agree with each other.

Every checkpoint stores the resolved config and a panel fingerprint (contig, number and
hash of site positions, sample count); imputing with a checkpoint made on another panel
is an :class:`~omicslm.errors.InputError`.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import logging
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import torch

from omicslm.errors import InputError
from omicslm.impute.evaluate import score
from omicslm.impute.layout import TYPE_NAMES, Panel, read_panel
from omicslm.impute.ragbert.batches import TrainEpochs, WindowData
from omicslm.impute.ragbert.model import LossWeights, ModelConfig, RagBert, model_loss
from omicslm.impute.ragbert.predict import predict_alt_prob
from omicslm.impute.ragbert.windows import (copying_options, file_sha1, haplotype_columns, panel_fingerprint, read_windows,
                                           window_data)
from omicslm.impute.split import read_array_sites, read_split, role_indices
from omicslm.io.atomic import atomic_open
from omicslm.train.device import pick_device, set_seed
from omicslm.train.distributed import is_main_process, shard_rows
from omicslm.train.loop import TrainConfig, fit, to_device
from omicslm.train.publish import publish_run, train_seconds

log = logging.getLogger(__name__)

#: Model-config keys of the ``impute.model`` block (the rest configure data, retrieval and training).
_ARCH_KEYS = ("hidden", "layers", "heads", "intermediate", "dropout", "retrieval", "pooling", "k",
              "max_inv_maf", "residual_scale", "ref_chunk", "ref_grad", "ref_checkpointing", "retrieved_vote")
#: Keys of the block that are not options of one model (selection and scheduling only).
_NON_MODEL_KEYS = ("enabled", "variants", "resources", "threads")


# --------------------------------------------------------------------------- config


def resolve_variant(model_block: dict, variant: str) -> dict:
    """The ``impute.model`` block with ``variants[variant]``'s overrides applied.

    Overrides replace top-level keys; a mapping override (e.g. ``loss: {focal_gamma: 2}``)
    updates that mapping key by key. Selection keys (``enabled``, ``variants``,
    ``resources``, ``threads``) are dropped, and so is a variant's own ``enabled``: they do not change the model.
    """
    variants = model_block.get("variants") or {}
    if variant not in variants:
        raise ValueError(f"unknown model variant {variant!r}; config impute.model.variants has {sorted(variants)}")
    resolved = {k: copy.deepcopy(v) for k, v in model_block.items() if k not in _NON_MODEL_KEYS}
    for key, value in (variants[variant] or {}).items():
        if key == "enabled":  # whether the workflow runs the variant, not a model key
            continue
        if isinstance(value, dict) and isinstance(resolved.get(key), dict):
            resolved[key].update(value)
        else:
            resolved[key] = copy.deepcopy(value)
    return resolved


def _model_config(cfg: dict, window_sites: int, n_pops: int) -> ModelConfig:
    arch = {k: cfg[k] for k in _ARCH_KEYS if k in cfg}
    copying = copying_options(cfg)
    if copying is not None:
        arch.update(copying=True, copy_prior_clip=float(copying["prior_clip"]))
    return ModelConfig.from_dict({**arch, "window_sites": int(window_sites), "n_types": len(TYPE_NAMES),
                                  "n_pops": int(n_pops)})


# --------------------------------------------------------------------------- data


def validation_metrics(p_alt: np.ndarray, truth_hap: np.ndarray, observed: np.ndarray, panel_af: np.ndarray,
                       *, maf_bins, eps: float) -> dict:
    """Validation metrics at the non-observed sites.

    Parameters
    ----------
    p_alt, truth_hap : (n_variants, 2 * n_samples) predicted ALT probability, true allele
    observed : (n_variants,) bool, array sites (not scored)
    panel_af : (n_variants,) ALT frequency of the training panel (minor-allele coding, bins)
    maf_bins : MAF bin edges (``impute.model.val_maf_bins``)
    eps : probability clip for the log loss

    Returns
    -------
    dict: ``val_loss`` (mean binary cross-entropy per allele), ``val_precision``,
    ``val_recall``, ``val_minor_f1`` (minor allele, per allele copy, best guess),
    ``val_r2_all`` and ``val_r2_<lo>_<hi>`` per MAF bin (aggregate dosage r²).
    """
    sel = ~observed
    p, y = p_alt[sel].astype(np.float64), truth_hap[sel].astype(np.float64)
    af = panel_af[sel]
    pc = np.clip(p, eps, 1 - eps)
    metrics = {"val_loss": float(-(y * np.log(pc) + (1 - y) * np.log(1 - pc)).mean())}
    flip = (af > 0.5)[:, None]
    pred_minor = np.where(flip, p < 0.5, p >= 0.5)
    true_minor = np.where(flip, y == 0, y == 1)
    tp = float((pred_minor & true_minor).sum())
    fp = float((pred_minor & ~true_minor).sum())
    fn = float((~pred_minor & true_minor).sum())
    metrics["val_precision"] = tp / (tp + fp) if tp + fp else 0.0
    metrics["val_recall"] = tp / (tp + fn) if tp + fn else 0.0
    metrics["val_minor_f1"] = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0
    n = p.shape[1] // 2
    dosage = p.reshape(len(p), n, 2).sum(axis=2)
    truth = y.reshape(len(y), n, 2).sum(axis=2).astype(np.int8)
    gt = (p >= 0.5).reshape(len(p), n, 2).sum(axis=2).astype(np.int8)
    table = score(truth, dosage, gt, af, bins=maf_bins, n_boot=0)
    for _, row in table.iterrows():
        if row["bin"] == "monomorphic":
            continue
        name = "all" if row["bin"] == "all" else f"{row['maf_lo']:g}_{row['maf_hi']:g}"
        metrics[f"val_r2_{name}"] = float(row["r2"]) if np.isfinite(row["r2"]) else float("nan")
    return metrics


# --------------------------------------------------------------------------- training


class _Inputs(NamedTuple):
    panel: Panel
    ref_idx: np.ndarray       # reference samples: training queries and retrieval panel
    val_idx: np.ndarray       # validation samples: validation queries
    array_idx: np.ndarray     # panel index of every array site
    observed: np.ndarray      # (n_variants,) bool, array sites
    windows: np.ndarray       # (n_windows, 2) start_idx end_idx


def _read_inputs(h5, split_tsv, array_tsv, windows_tsv) -> _Inputs:
    """The panel, the training roles, the array sites and the windows; InputError when they disagree."""
    panel = read_panel(h5)
    split = read_split(split_tsv)
    ref_idx = role_indices(panel, split, ["reference"])
    val_idx = role_indices(panel, split, ["validation"])
    if len(val_idx) == 0:
        raise InputError(split_tsv, "no validation samples: model training validates every epoch "
                                    "(set impute.split.validation_fraction > 0)")
    array = read_array_sites(array_tsv)
    a_idx = array["idx"].to_numpy(dtype=np.int64)
    if a_idx.max() >= panel.n_variants or not np.array_equal(panel.pos[a_idx], array["pos"].to_numpy()):
        raise InputError(array_tsv, f"array sites do not match the panel sites of {h5}")
    observed = np.zeros(panel.n_variants, dtype=bool)
    observed[a_idx] = True
    return _Inputs(panel, ref_idx, val_idx, a_idx, observed, read_windows(windows_tsv, panel.n_variants))


def training_queries(ref_idx: np.ndarray, n: int | None, *, seed: int) -> np.ndarray:
    """The reference samples whose haplotypes are training queries: all of them (``n`` None or at least their
    number), else ``n`` drawn without replacement (seeded) and kept in panel order.

    Training draws ``pairs_per_epoch`` (window, sample) pairs an epoch, a small part of all of them on a large
    panel; retrieving and running the copying model for every reference haplotype would cost the most of the
    data step for pairs never drawn. The retrieval panel is always every reference sample."""
    if n is None or n >= len(ref_idx):
        return ref_idx
    rng = np.random.default_rng(seed)
    return ref_idx[np.sort(rng.choice(len(ref_idx), size=int(n), replace=False))]


def _window_datasets(inputs: _Inputs, *, cfg: dict, seed: int, threads: int, window_sites: int,
                     genetic_map, train: bool = True) -> tuple[WindowData | None, WindowData, float]:
    """Training and validation queries, both retrieved against the reference, and the seconds that took.

    The seconds cover retrieval (and the copying model) of both. ``train=False``: validation only (None for
    the training data: a variant without a network trains nothing).
    """
    started = time.perf_counter()
    panel, ref_idx, val_idx = inputs.panel, inputs.ref_idx, inputs.val_idx
    common = dict(panel_idx=ref_idx, cfg=cfg, threads=threads, window_sites=window_sites, genetic_map=genetic_map)
    train_data = None
    if train:
        query_idx = training_queries(ref_idx, cfg.get("train_query_samples"), seed=seed)
        if len(query_idx) < len(ref_idx):
            log.info("training queries: %d of the %d reference samples (impute.model.train_query_samples), each "
                     "retrieved against all of them", len(query_idx), len(ref_idx))
        train_data = window_data(panel, inputs.windows, inputs.observed, query_idx=query_idx,
                                 query_hap=haplotype_columns(panel.hap, query_idx), labels=True, exclude_self=True,
                                 seed=seed, **common)
    val_data = window_data(panel, inputs.windows, inputs.observed, query_idx=val_idx,
                           query_hap=haplotype_columns(panel.hap, val_idx), labels=False, exclude_self=False,
                           seed=seed + 1, **common)
    return train_data, val_data, time.perf_counter() - started


def _as_list(x) -> list:
    return list(x) if isinstance(x, (list, tuple)) else [x]


def _same_samples(contigs: list[_Inputs], splits: list) -> None:
    """InputError unless every contig's panel has the same reference and validation samples, in the same order
    (one model, one retrieval panel: a haplotype column means the same person on every chromosome)."""
    first = contigs[0]
    for inputs, split_tsv in zip(contigs[1:], splits[1:]):
        for role, a, b in (("reference", first.ref_idx, inputs.ref_idx), ("validation", first.val_idx, inputs.val_idx)):
            if not np.array_equal(first.panel.samples[a], inputs.panel.samples[b]):
                raise InputError(split_tsv, f"the {role} samples of {inputs.panel.contig} differ from those of "
                                            f"{first.panel.contig}: a model trained across chromosomes needs the same "
                                            f"panel samples (and split) on every chromosome")
        if list(inputs.panel.populations) != list(first.panel.populations):
            raise InputError(split_tsv, f"the populations of {inputs.panel.contig} differ from those of "
                                        f"{first.panel.contig}")


def concat_window_data(parts: list[WindowData]) -> WindowData:
    """One dataset over several contigs: sites stacked contig after contig, windows offset onto them.

    The parts must share their query and panel haplotypes (the same samples in the same order), so the retrieved
    neighbour indices mean the same haplotypes in every part; a window never spans two contigs.
    """
    if len(parts) == 1:
        return parts[0]
    offsets = np.cumsum([0] + [len(d.positions) for d in parts[:-1]])

    def cat(name):
        values = [getattr(d, name) for d in parts]
        return None if values[0] is None else np.concatenate(values)

    first = parts[0]
    stats = type(first.stats)(**{f: np.concatenate([getattr(d.stats, f) for d in parts])
                                  for f in ("af", "af_pop", "geno_freq")})
    return WindowData(windows=np.concatenate([d.windows + o for d, o in zip(parts, offsets)]),
                      window_sites=max(d.window_sites for d in parts), positions=cat("positions"), vtype=cat("vtype"),
                      stats=stats, observed=cat("observed"), query_hap=cat("query_hap"), query_pop=first.query_pop,
                      panel_hap=cat("panel_hap"), panel_pop=first.panel_pop, neighbours=cat("neighbours"),
                      copy_prob=cat("copy_prob"), labels=first.labels)


def _contig_datasets(contigs: list[_Inputs], maps: list, *, cfg: dict, seed: int, threads: int,
                     window_sites: int, train: bool = True) -> tuple[WindowData | None, WindowData, float]:
    """:func:`_window_datasets` of every contig, concatenated (training and validation), and the seconds in all."""
    train_parts, val_parts, seconds = [], [], 0.0
    for inputs, gmap in zip(contigs, maps):
        train_data, val_data, took = _window_datasets(inputs, cfg=cfg, seed=seed, threads=threads,
                                                      window_sites=window_sites, genetic_map=gmap, train=train)
        train_parts.append(train_data)
        val_parts.append(val_data)
        seconds += took
    return (concat_window_data(train_parts) if train else None), concat_window_data(val_parts), seconds


def _run_config(variant: str, mcfg: ModelConfig, cfg: dict, contigs: list[_Inputs], maps: list) -> dict:
    """What a checkpoint records: model, options, and the panel, array sites and map of every contig it was trained
    on (``panel`` / ``array_sha1`` / ``genetic_map_sha1``: the first contig's, as single-contig checkpoints have)."""
    arrays = [hashlib.sha1(np.ascontiguousarray(c.panel.pos[c.array_idx], dtype=np.int64).tobytes()).hexdigest()
              for c in contigs]
    panels = [panel_fingerprint(c.panel) for c in contigs]
    return {"variant": variant, "model": mcfg.to_dict(), "options": cfg, "panel": panels[0], "panels": panels,
            "array_sha1": arrays[0], "genetic_map_sha1": file_sha1(maps[0]),
            "genetic_map_sha1s": {c.panel.contig: file_sha1(m) for c, m in zip(contigs, maps)}}


def _contig_inputs(h5, split_tsv, array_tsv, windows_tsv, genetic_map, *, variant: str) -> tuple[list[_Inputs], list]:
    """Each contig's :func:`_read_inputs` (one path, or a list of paths per contig, of each kind) and its genetic
    map (None: uniform), checked to hold the same panel samples; each contig's sizes logged."""
    splits = _as_list(split_tsv)
    contigs = [_read_inputs(*paths) for paths in zip(_as_list(h5), splits, _as_list(array_tsv), _as_list(windows_tsv),
                                                      strict=True)]
    maps = _as_list(genetic_map) if genetic_map is not None else [None] * len(contigs)
    if len(maps) != len(contigs):
        raise ValueError(f"{len(maps)} genetic maps for {len(contigs)} contigs")
    _same_samples(contigs, splits)
    for c in contigs:
        log.info("%s: %s: %d reference / %d validation samples, %d sites (%d on the array), %d windows", variant,
                 c.panel.contig, len(c.ref_idx), len(c.val_idx), c.panel.n_variants, int(c.observed.sum()),
                 len(c.windows))
    return contigs, maps


def train_ragbert(h5, split_tsv, array_tsv, windows_tsv, *, out_dir, work_dir, variant: str, model_block: dict,
                  maf_bins, threads: int = 1, loss_hook=None, genetic_map=None) -> dict:
    """Train one model variant; resumes from ``work_dir/last`` when a previous run was killed.

    Parameters
    ----------
    h5, split_tsv, array_tsv, windows_tsv : path, or a list of paths (one per contig)
        Ingested panel, sample roles, array sites (``pos idx``), windows (``start_idx end_idx``). Lists train one
        model on the windows of every contig (:func:`concat_window_data`); the contigs' panels must hold the same
        reference and validation samples in the same order.
    out_dir : path
        Receives ``best/`` (checkpoint: ``model.safetensors`` + ``config.json``),
        ``history.tsv`` and ``train_runtime.json`` once training is finished.
    work_dir : path
        The training loop's directory (``last/`` resumable checkpoint, ``best/``,
        ``tensorboard/``). Keep it outside the workflow's declared outputs, so a failed job
        does not delete it.
    variant : str
        Key of ``model_block['variants']`` whose overrides apply.
    model_block : dict
        The ``impute.model`` config block.
    maf_bins : sequence of float
        MAF bin edges for the validation r² (``impute.model.val_maf_bins``).
    threads : int
        Torch and FAISS CPU threads.
    loss_hook : callable, optional
        Called as ``loss_hook(epoch)`` before every training batch (tests use it to
        interrupt a run).
    genetic_map : path or list of paths (one per contig), optional
        PLINK map for the copying model's genetic distances (uniform map when None);
        imputation must use the same one (its checksum is stored in the checkpoint).

    Returns
    -------
    dict
        The training loop's final state (``best_metric``, ``best_epoch``, ``history``...).
    """
    started = time.perf_counter()
    torch.set_num_threads(max(1, int(threads)))
    cfg = resolve_variant(model_block, variant)
    tcfg = TrainConfig.from_dict(cfg["train"])
    contigs, maps = _contig_inputs(h5, split_tsv, array_tsv, windows_tsv, genetic_map, variant=variant)
    longest = max(int((c.windows[:, 1] - c.windows[:, 0]).max()) for c in contigs)
    mcfg = _model_config(cfg, longest, len(contigs[0].panel.populations))
    weights = LossWeights(**cfg["loss"])
    set_seed(tcfg.seed)
    network = bool(cfg.get("network", True))
    if not network and copying_options(cfg) is None:
        raise ValueError(f"variant {variant}: network: false imputes with the copying model alone, which needs "
                         "copying.enabled and retrieval")
    train_data, val_data, data_seconds = _contig_datasets(contigs, maps, cfg=cfg, seed=tcfg.seed, threads=threads,
                                                          window_sites=mcfg.window_sites, train=network)
    if not network:
        return _publish_copying_only(variant, mcfg, cfg, contigs, maps, val_data, out_dir=out_dir, work_dir=work_dir,
                                     maf_bins=maf_bins, started=started, data_seconds=data_seconds, threads=threads,
                                     metric=tcfg.early_stopping_metric)
    epochs = TrainEpochs(train_data, batch_size=cfg["batch_size"], pairs_per_epoch=cfg.get("pairs_per_epoch"),
                         seed=tcfg.seed, reveal_start=cfg["reveal_start"], curriculum_epochs=cfg["curriculum_epochs"])
    device = pick_device(tcfg.device)
    model = RagBert(mcfg)

    def loss_fn(m, batch, epoch):
        if loss_hook is not None:
            loss_hook(epoch)
        batch = to_device(batch, device)
        return model_loss(m(batch), batch["labels"], weights)

    def validate(m, epoch):
        return _validate(m, val_data, train_data, cfg=cfg, device=device, amp=tcfg.amp, maf_bins=maf_bins)

    # under torchrun each rank takes whole samples (both haplotype rows): the genotype loss pairs rows 2i, 2i+1
    state = fit(model, epochs, loss_fn, validate, tcfg, work_dir,
                run_config=_run_config(variant, mcfg, cfg, contigs, maps),
                steps_per_epoch=epochs.steps_per_epoch(), shard_batch=functools.partial(shard_rows, multiple=2))
    if is_main_process():
        _publish_trained(variant, state, out_dir=out_dir, work_dir=work_dir, started=started,
                         data_seconds=data_seconds, threads=threads, device=device, metric=tcfg.early_stopping_metric)
    return state


def _validate(model, val_data: WindowData, train_data: WindowData, *, cfg: dict, device, amp: bool,
              maf_bins) -> dict:
    """The epoch's validation metrics: the validation queries imputed on the imputation's path, with its own keys
    (``val_batch_size``, ``val_skip_confident``; the ``predict_*`` keys must not retrain): the pairs the copying
    model is sure of take its answer, as the imputation does, so an epoch's validation costs a fraction."""
    p = predict_alt_prob(model, val_data, batch_size=cfg.get("val_batch_size") or cfg["batch_size"], device=device,
                         amp=amp, desc="validate", skip_confident=cfg.get("val_skip_confident", 0.0))
    return validation_metrics(p, val_data.query_hap, train_data.observed, train_data.stats.af, maf_bins=maf_bins,
                              eps=cfg["prob_eps"])


def _publish_trained(variant, state, *, out_dir, work_dir, started, data_seconds, threads, device, metric) -> None:
    """best/ and history of the finished run into ``out_dir``, with train_runtime.json (seconds, best epoch)."""
    seconds = train_seconds(state["history"])
    publish_run(work_dir, out_dir, summary_name="train_runtime.json", summary={
        "method": variant, "train_seconds": seconds, "this_run_seconds": time.perf_counter() - started,
        "data_seconds": data_seconds, "threads": int(threads), "device": str(device),
        "best_epoch": state["best_epoch"], "best_metric": state["best_metric"], "metric": metric})
    log.info("%s: best %s %.4f at epoch %s; %.0f s training", variant, metric, state["best_metric"],
             state["best_epoch"], seconds)


def _publish_copying_only(variant, mcfg, cfg, contigs, maps, val_data, *, out_dir, work_dir, maf_bins,
                          started, data_seconds, threads, metric) -> dict:
    """A ``network: false`` variant: nothing to train. Its checkpoint is the run config alone (no weights: the copying
    model over the FAISS candidates is the answer); its one history row, the copying model's validation metrics."""
    if not is_main_process():
        return {}
    # the validation queries are retrieved against the reference samples, whose AF val_data.stats holds
    metrics = validation_metrics(val_data.copy_prob, val_data.query_hap, val_data.observed, val_data.stats.af,
                                 maf_bins=maf_bins, eps=cfg["prob_eps"])
    work = Path(work_dir)
    (work / "best").mkdir(parents=True, exist_ok=True)
    with atomic_open(work / "best" / "config.json") as fh:
        json.dump(_run_config(variant, mcfg, cfg, contigs, maps), fh, indent=2, sort_keys=True)
    history = pd.DataFrame([{"epoch": 0, "train_loss": float("nan"), **metrics, "lr": 0.0, "seconds": data_seconds}])
    with atomic_open(work / "history.tsv") as fh:
        history.to_csv(fh, sep="\t", index=False)
    best = float(metrics[metric]) if metric in metrics else float("nan")
    publish_run(work_dir, out_dir, summary_name="train_runtime.json", summary={
        "method": variant, "train_seconds": 0.0, "this_run_seconds": time.perf_counter() - started,
        "data_seconds": data_seconds, "threads": int(threads), "device": "cpu", "best_epoch": 0,
        "best_metric": best, "metric": metric, "network": False})
    log.info("%s: the copying model alone (no network): validation %s %.4f; %.0f s preparing its data", variant,
             metric, best, data_seconds)
    return {"best_metric": best, "best_epoch": 0, "history": history.to_dict("records")}
