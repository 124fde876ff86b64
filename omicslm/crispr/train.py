"""Train one named method on the shared split and write its test/dev predictions and runtime.

Targets are standardised with the train split's mean and SD for the loss; predictions are
mapped back to the 0–100 efficiency scale (and clipped to it) before they are written.
A method with ``ensemble: N`` trains N members with seeds ``seed, seed + 1, ...`` (each with
its own resumable work directory) and averages their predictions, as CRISPRon averages an
ensemble of CNNs. With ``ensemble_folds: true`` the members are trained as CRISPRon's are, on
cross-validation folds: the train and dev guides are pooled and cut into N folds (by spacer, so
no gRNA is in two folds); member i stops early on fold i and trains on the others. The test
split is untouched; the dev rows of the predictions are then in-sample for N-1 members, so only
the test rows are an honest score (``results/crispr_eval.tsv`` scores the test rows).

``predictions.tsv`` has every guide (train, dev, test) and an ``oof`` column: the out-of-sample
prediction where one exists — with cross-validation members, every train+dev guide's prediction
by the member that held its fold out; otherwise the dev rows' (which no member trained on).
Test rows never have one. A stacked method (:mod:`omicslm.crispr.stack`) fits its weights on it.
"""

from __future__ import annotations

import logging
import os
import time

import numpy as np
import pandas as pd
import torch
from scipy.stats import spearmanr

from omicslm.crispr.gbm import SCAFFOLD, gbm_inputs, train_gbm_member
from omicslm.crispr.kept import save_kept
from omicslm.crispr.models import ENCODER_KINDS, build_model, count_trainable, one_hot
from omicslm.crispr.tokenize import load_dataset
from omicslm.io.atomic import atomic_open
from omicslm.io.runtime import write_runtime
from omicslm.train import TrainConfig, fit, to_device
from omicslm.train.device import set_seed
from omicslm.train.distributed import is_main_process
from omicslm.train.publish import train_seconds

log = logging.getLogger(__name__)

EFF_MIN, EFF_MAX = 0.0, 100.0


def _tensors(data: dict, rows: np.ndarray, kind: str, energy_mean: float, energy_sd: float) -> dict:
    x = (torch.from_numpy(one_hot(list(data["mer30"][rows]))) if kind == "cnn"
         else torch.from_numpy(data["input_ids"][rows]))
    energy = torch.from_numpy(np.nan_to_num((data["energy"][rows] - energy_mean) / energy_sd).astype(np.float32))
    return {"x": x, "energy": energy}


def train_method(dataset: str | os.PathLike, predictions: str | os.PathLike, runtime: str | os.PathLike, *,
                 method: str, spec: dict, encoder_dir: str | os.PathLike | None, encoder_name: str,
                 work_dir: str | os.PathLike, k: int, batch_size: int, head_hidden: int, dropout: float,
                 pooling: str, train: dict, threads: int = 1, kept_dir: str | os.PathLike | None = None) -> dict:
    """Fit method ``method`` (block ``spec``: ``kind`` + options + optional ``train`` overrides).

    Writes ``predictions`` (``id role measured predicted oof``, every guide, 0–100) and
    ``runtime`` (json: method, seconds, threads, trainable_params, encoder, best_epoch; an
    ensemble sums seconds and parameters over its members and lists their best epochs), and,
    with ``kept_dir``, the trained members for later use (:mod:`omicslm.crispr.kept`).

    Returns
    -------
    dict
        The runtime record (empty on the other ranks of a torchrun job).
    """
    torch.set_num_threads(max(1, threads))
    base = {**train, **(spec.get("train") or {})}
    n_members = int(spec.get("ensemble", 1))
    if n_members < 1:
        raise ValueError(f"crispr method {method}: ensemble must be >= 1, got {n_members}")
    seed0 = int(TrainConfig.from_dict(base).seed)
    data = load_dataset(dataset)
    folds = fold_roles(data, n_members, seed0) if spec.get("ensemble_folds") else None
    if folds is not None:
        log.info("%s: %d cross-validation members over the %d train+dev guides", method, n_members,
                 int((folds[0] != "test").sum()))
    if spec["kind"] == "gbm" and n_members > 1 and folds is None:
        log.warning("%s: boosted trees are deterministic; %d seeded members on one split are identical "
                    "(ensemble_folds: true trains one per fold)", method, n_members)
    gbm_features = gbm_inputs(data, spec) if spec["kind"] == "gbm" else None  # the same for every member
    members = []
    for i in range(n_members):
        # Member 0 of a 1-member "ensemble" is the plain method: same seed, same work directory as before.
        sub_dir = work_dir if n_members == 1 else os.path.join(work_dir, f"member{i}")
        cfg = TrainConfig.from_dict({**base, "seed": seed0 + i})
        if spec["kind"] == "gbm":  # boosted trees: no torch loop, no work directory (seconds per member)
            members.append(train_gbm_member(data, gbm_features, data["role"] if folds is None else folds[i], spec,
                                            seed=cfg.seed, threads=threads))
            continue
        members.append(_train_one(dataset, method, spec, cfg, encoder_dir=encoder_dir, encoder_name=encoder_name,
                                  work_dir=sub_dir, k=k, batch_size=batch_size, head_hidden=head_hidden,
                                  dropout=dropout, pooling=pooling, train=train,
                                  roles=None if folds is None else folds[i]))
    if not is_main_process():  # under torchrun rank 0 writes the outputs
        return {}
    first = members[0]
    pred = np.mean([m["pred"] for m in members], axis=0)
    write_predictions(predictions, first["ids"], first["roles"], first["measured"], pred,
                      out_of_sample(pred, first["roles"], [m["dev"] for m in members], folds is not None,
                                    [m["pred"] for m in members]))
    record = {"method": method, "seconds": round(sum(m["seconds"] for m in members), 3), "threads": threads,
              "trainable_params": int(sum(m["trainable"] for m in members)), "encoder": first["encoder"],
              "best_epoch": first["best_epoch"] if n_members == 1 else [m["best_epoch"] for m in members]}
    if n_members > 1:
        record["ensemble"] = n_members
    if kept_dir is not None:
        settings = {"k": k, "batch_size": batch_size, "head_hidden": head_hidden, "dropout": dropout,
                    "pooling": pooling, "use_energy": bool(first["use_energy"]), "seq_length": len(data["mer30"][0]),
                    **({"features": list(spec.get("features", ())), "scaffold": spec.get("scaffold", SCAFFOLD)}
                       if spec["kind"] == "gbm" else {})}
        save_kept(kept_dir, method=method, spec=spec, settings=settings, members=members)
    write_runtime(runtime, **record)
    log.info("%s: trained in %.1f s (%d member(s))", method, record["seconds"], n_members)
    return record


def out_of_sample(pred: np.ndarray, roles: np.ndarray, member_dev: list[np.ndarray], folds: bool,
                  member_pred: list[np.ndarray]) -> np.ndarray:
    """Out-of-sample predictions (NaN where none): each guide's prediction by a model that did not train on it.

    ``member_dev`` holds each member's boolean early-stopping rows. Cross-validation members
    (``folds``): a guide's value is its own fold's member's prediction; otherwise the ensemble
    mean on the split's dev rows. Test rows stay NaN: they are for scoring only.
    """
    oof = np.full(len(pred), np.nan)
    if folds:
        for dev, p in zip(member_dev, member_pred):
            oof[dev] = p[dev]
    else:
        oof[roles == "dev"] = pred[roles == "dev"]
    oof[roles == "test"] = np.nan
    return oof


def write_predictions(path, ids, roles, measured, predicted, oof) -> None:
    """``predictions.tsv`` of one method: ``id role measured predicted oof`` (0–100; oof NaN = none)."""
    with atomic_open(path) as fh:
        pd.DataFrame({"id": ids, "role": roles, "measured": measured, "predicted": predicted, "oof": oof}
                     ).to_csv(fh, sep="\t", index=False, float_format="%.4f")


def fold_roles(data: dict, n_folds: int, seed: int) -> list[np.ndarray]:
    """Role arrays of ``n_folds`` cross-validation members: fold i of train+dev is "dev", the rest "train".

    Guides are assigned to folds by spacer (all guides with one 20-nt spacer share a fold),
    in a seeded random order; "test" rows keep their role.
    """
    from omicslm.crispr.kmers import FLANK5, SPACER

    if n_folds < 2:
        raise ValueError(f"ensemble_folds needs ensemble >= 2, got {n_folds}")
    role = data["role"]
    pool = np.flatnonzero(role != "test")
    spacers = np.array([m[FLANK5:FLANK5 + SPACER] for m in data["mer30"][pool]])
    uniq, inverse = np.unique(spacers, return_inverse=True)
    fold_of_spacer = np.random.default_rng(seed).permutation(len(uniq)) % n_folds
    fold = fold_of_spacer[inverse]
    out = []
    for i in range(n_folds):
        r = role.copy()
        r[pool] = np.where(fold == i, "dev", "train")
        out.append(r)
    return out


def _train_one(dataset, method: str, spec: dict, cfg: TrainConfig, *, encoder_dir, encoder_name: str, work_dir,
               k: int, batch_size: int, head_hidden: int, dropout: float, pooling: str, train: dict,
               roles: np.ndarray | None = None) -> dict:
    """Fit one model; return its predictions for every guide (0–100) and what the runtime record needs.

    ``roles`` replaces the dataset's train/dev/test roles (a cross-validation member).
    """
    data = load_dataset(dataset)
    role = data["role"] if roles is None else roles
    tr, dv = np.flatnonzero(role == "train"), np.flatnonzero(role == "dev")
    kind = spec["kind"]
    use_energy = kind == "cnn" and not np.isnan(data["energy"]).all() and spec.get("use_energy", True)
    y = data["efficiency"].astype(np.float32)
    y_mean, y_sd = float(y[tr].mean()), float(y[tr].std()) or 1.0
    e_mean = float(np.nanmean(data["energy"][tr])) if use_energy else 0.0
    e_sd = (float(np.nanstd(data["energy"][tr])) or 1.0) if use_energy else 1.0
    set_seed(cfg.seed)  # the head's (and CNN's) initial weights: reproducible, and distinct per ensemble member
    model = build_model(spec, encoder_dir=encoder_dir if kind in ENCODER_KINDS else None, k=k,
                        head_hidden=head_hidden, dropout=dropout, pooling=pooling,
                        seq_length=len(data["mer30"][0]), use_energy=use_energy)
    n_trainable = count_trainable(model)
    log.info("%s (%s): %d trainable of %d parameters; %d train / %d dev guides", method, kind, n_trainable,
             sum(p.numel() for p in model.parameters()), len(tr), len(dv))
    train_t = {**_tensors(data, tr, kind, e_mean, e_sd), "y": torch.from_numpy((y[tr] - y_mean) / y_sd)}
    n_batches = int(np.ceil(len(tr) / batch_size))

    def train_batches(epoch: int):
        order = torch.randperm(len(tr), generator=torch.Generator().manual_seed(cfg.seed + epoch))
        return [{key: v[order[i:i + batch_size]] for key, v in train_t.items()}
                for i in range(0, len(tr), batch_size)]

    def predict(m, rows: np.ndarray) -> np.ndarray:
        return model_predictions(m, data, rows, kind, batch_size=batch_size, y_mean=y_mean, y_sd=y_sd,
                                 e_mean=e_mean, e_sd=e_sd)

    def loss_fn(m, batch, epoch):
        b = to_device(batch, next(m.parameters()).device)
        return torch.nn.functional.mse_loss(m(b["x"], b["energy"]).float(), b["y"]), {}

    def validate(m, epoch):
        pred = predict(m, dv)
        err = pred - y[dv]
        return {"val_loss": float(np.mean((err / y_sd) ** 2)), "val_rmse": float(np.sqrt(np.mean(err ** 2))),
                "val_spearman": float(spearmanr(pred, y[dv]).statistic)}

    run_config = {"method": method, "spec": spec, "encoder": encoder_name, "k": k, "batch_size": batch_size,
                  "head_hidden": head_hidden, "dropout": dropout, "pooling": pooling, "train": train,
                  **({"seed": cfg.seed} if spec.get("ensemble", 1) > 1 else {})}
    started = time.perf_counter()
    state = fit(model, train_batches, loss_fn, validate, cfg, work_dir, run_config=run_config,
                steps_per_epoch=n_batches)
    seconds = time.perf_counter() - started
    if not is_main_process():
        return {}
    model.eval()
    rows = np.arange(len(role))  # every guide; the roles column says which are honest
    with torch.no_grad():
        pred = predict(model, rows)
    # a resumed-and-finished run measures only its last call; the per-epoch seconds in history are the truth
    total = train_seconds(state["history"]) or seconds
    encoder = (encoder_name if kind in ENCODER_KINDS
               else "none (one-hot 30mer" + (" + binding energy)" if use_energy else ")"))
    log.info("%s (seed %d): trained in %.1f s, best epoch %s", method, cfg.seed, total, state["best_epoch"])
    return {"pred": pred, "ids": data["id"][rows], "roles": data["role"][rows], "measured": y[rows], "seconds": total,
            "dev": role == "dev", "trainable": n_trainable, "encoder": encoder, "best_epoch": state["best_epoch"],
            "model": model, "use_energy": use_energy,
            "norm": {"y_mean": y_mean, "y_sd": y_sd, "e_mean": e_mean, "e_sd": e_sd}}


def model_predictions(model, data: dict, rows: np.ndarray, kind: str, *, batch_size: int, y_mean: float,
                      y_sd: float, e_mean: float, e_sd: float) -> np.ndarray:
    """A torch member's predictions (0-100, clipped) of ``data``'s ``rows``, in batches of ``batch_size``.

    ``data``: ``mer30`` (CNN) or ``input_ids`` (encoder kinds) and ``energy``; the target and energy were
    standardised with the member's train rows' ``y_mean, y_sd`` and ``e_mean, e_sd``.
    """
    device = next(model.parameters()).device
    t = _tensors(data, rows, kind, e_mean, e_sd)
    out = []
    for i in range(0, len(rows), batch_size):
        b = to_device({key: v[i:i + batch_size] for key, v in t.items()}, device)
        out.append(model(b["x"], b["energy"]).float().cpu().numpy())
    return np.clip(np.concatenate(out) * y_sd + y_mean, EFF_MIN, EFF_MAX)
