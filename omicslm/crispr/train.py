"""Train one named method on the shared split and write its test/dev predictions and runtime.

Targets are standardised with the train split's mean and SD for the loss; predictions are
mapped back to the 0–100 efficiency scale (and clipped to it) before they are written.
"""

from __future__ import annotations

import json
import logging
import os
import time

import numpy as np
import pandas as pd
import torch
from scipy.stats import spearmanr

from omicslm.crispr.models import ENCODER_KINDS, build_model, count_trainable, one_hot
from omicslm.crispr.tokenize import load_dataset
from omicslm.io.atomic import atomic_open
from omicslm.train import TrainConfig, fit, to_device
from omicslm.train.distributed import is_main_process

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
                 pooling: str, train: dict, threads: int = 1) -> dict:
    """Fit method ``method`` (block ``spec``: ``kind`` + options + optional ``train`` overrides).

    Writes ``predictions`` (``id role measured predicted``, dev and test rows, 0–100) and
    ``runtime`` (json: method, seconds, threads, trainable_params, encoder, best_epoch).

    Returns
    -------
    dict
        The runtime record (empty on the other ranks of a torchrun job).
    """
    torch.set_num_threads(max(1, threads))
    cfg = TrainConfig.from_dict({**train, **(spec.get("train") or {})})
    data = load_dataset(dataset)
    role = data["role"]
    tr, dv = np.flatnonzero(role == "train"), np.flatnonzero(role == "dev")
    kind = spec["kind"]
    use_energy = kind == "cnn" and not np.isnan(data["energy"]).all() and spec.get("use_energy", True)
    y = data["efficiency"].astype(np.float32)
    y_mean, y_sd = float(y[tr].mean()), float(y[tr].std()) or 1.0
    e_mean = float(np.nanmean(data["energy"][tr])) if use_energy else 0.0
    e_sd = (float(np.nanstd(data["energy"][tr])) or 1.0) if use_energy else 1.0
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
        device = next(m.parameters()).device
        t = _tensors(data, rows, kind, e_mean, e_sd)
        out = []
        for i in range(0, len(rows), batch_size):
            b = to_device({key: v[i:i + batch_size] for key, v in t.items()}, device)
            out.append(m(b["x"], b["energy"]).float().cpu().numpy())
        return np.clip(np.concatenate(out) * y_sd + y_mean, EFF_MIN, EFF_MAX)

    def loss_fn(m, batch, epoch):
        b = to_device(batch, next(m.parameters()).device)
        return torch.nn.functional.mse_loss(m(b["x"], b["energy"]).float(), b["y"]), {}

    def validate(m, epoch):
        pred = predict(m, dv)
        err = pred - y[dv]
        return {"val_loss": float(np.mean((err / y_sd) ** 2)), "val_rmse": float(np.sqrt(np.mean(err ** 2))),
                "val_spearman": float(spearmanr(pred, y[dv]).statistic)}

    run_config = {"method": method, "spec": spec, "encoder": encoder_name, "k": k, "batch_size": batch_size,
                  "head_hidden": head_hidden, "dropout": dropout, "pooling": pooling, "train": train}
    started = time.perf_counter()
    state = fit(model, train_batches, loss_fn, validate, cfg, work_dir, run_config=run_config,
                steps_per_epoch=n_batches)
    seconds = time.perf_counter() - started
    if not is_main_process():  # under torchrun rank 0 writes the outputs
        return {}
    model.eval()
    rows = np.flatnonzero(role != "train")
    with torch.no_grad():
        pred = predict(model, rows)
    with atomic_open(predictions) as fh:
        pd.DataFrame({"id": data["id"][rows], "role": role[rows], "measured": y[rows], "predicted": pred}
                     ).to_csv(fh, sep="\t", index=False, float_format="%.4f")
    # a resumed-and-finished run measures only its last call; the per-epoch seconds in history are the truth
    total = sum(float(r.get("seconds", 0.0)) for r in state["history"]) or seconds
    record = {"method": method, "seconds": round(total, 3), "threads": threads, "trainable_params": n_trainable,
              "encoder": encoder_name if kind in ENCODER_KINDS else "none (one-hot 30mer"
              + (" + binding energy)" if use_energy else ")"), "best_epoch": state["best_epoch"]}
    with atomic_open(runtime) as fh:
        json.dump(record, fh, indent=1)
    log.info("%s: trained in %.1f s, best epoch %s", method, total, state["best_epoch"])
    return record
