"""Train the cell transformer on a tokenized data set with the shared loop (:func:`omicslm.train.fit`).

Every training batch takes ``batch_size`` training cells x all their views (the seed's "16 x 2")
and masks ``mask_fraction`` of each view's tokens afresh (seeded by epoch, so a resumed run sees
the same batches). Validation scores the masked-count NLL on view 0 of the validation cells
with fixed masks (:func:`eval_mask`, the same masks the baselines are scored on), so
``val_loss`` is comparable with the per-gene marginal baseline of the same cells.

The lr schedule is :class:`omicslm.train.TrainConfig`'s: linear warmup to ``lr`` over
``warmup_steps``, then cosine decay to ``min_lr_ratio * lr`` at the last optimizer step of the
run (``max_epochs * ceil(steps_per_epoch / grad_accum)``). The seed's schedule (warmup 1000 to
1e-3, cosine to 5e-4 over 10,000 steps) is ``lr: 1e-3, warmup_steps: 1000, min_lr_ratio: 0.5``
with a 10,000-step run (``config/full.yaml``).
"""

from __future__ import annotations

import logging
import math
import os
import time

import numpy as np
import torch

from omicslm.scrna.model import IGNORE, CellTransformer, ModelConfig, masked_count_nll, training_loss
from omicslm.scrna.tokenize import PAD, Tokenized, load_tokenized
from omicslm.train import TrainConfig, fit, load_checkpoint, pick_device, read_checkpoint_config, to_device
from omicslm.train.device import set_seed
from omicslm.train.publish import publish_run, train_seconds

log = logging.getLogger(__name__)


def mask_rows(genes: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Mask round(``fraction`` x tokens) (at least one) random non-padding tokens of every row.

    genes : int (n_rows, seq_len) -> bool (n_rows, seq_len)
    """
    valid = genes != PAD
    k = np.where(valid.any(1), np.maximum(1, np.rint(fraction * valid.sum(1))), 0).astype(np.int64)
    scores = rng.random(genes.shape)
    scores[~valid] = 2.0  # padding sorts last, never masked
    ranks = scores.argsort(1).argsort(1)
    return ranks < k[:, None]


def eval_mask(data: Tokenized, rows: np.ndarray, *, fraction: float, seed: int) -> np.ndarray:
    """Fixed masks of view 0 of ``rows``: each cell's mask depends only on (seed, row), not on the subset.

    Returns bool (len(rows), seq_len).
    """
    genes = np.asarray(data.genes[rows, 0])
    out = np.zeros(genes.shape, dtype=bool)
    for j, r in enumerate(rows):
        out[j] = mask_rows(genes[j:j + 1], fraction, np.random.default_rng([seed, int(r)]))[0]
    return out


def model_inputs(genes: np.ndarray, bins: np.ndarray, mask: np.ndarray, n_bins: int) -> dict[str, torch.Tensor]:
    """Token arrays (n, seq_len) -> the model's ``genes``, ``values`` (bin, [MASK] or padding) and ``labels``."""
    genes = np.asarray(genes, dtype=np.int64)
    bins = np.asarray(bins, dtype=np.int64)
    pad = genes == PAD
    values = np.where(pad, n_bins + 1, np.where(mask, n_bins, bins))
    labels = np.where(mask & ~pad, bins, IGNORE)
    return {"genes": torch.from_numpy(genes), "values": torch.from_numpy(values), "labels": torch.from_numpy(labels)}


class EpochBatches:
    """``steps_per_epoch`` batches of ``batch_size`` training cells (all views), reshuffled per epoch.

    The same ``(seed, epoch)`` always yields the same batches (:func:`omicslm.train.fit` resumes mid-epoch).
    """

    def __init__(self, data: Tokenized, rows: np.ndarray, *, batch_size: int, steps: int, mask_fraction: float,
                 seed: int, epoch: int):
        self.data, self.rows, self.batch_size, self.steps = data, rows, batch_size, steps
        self.mask_fraction, self.seed, self.epoch = mask_fraction, seed, epoch

    def __len__(self) -> int:
        return self.steps

    def __iter__(self):
        rng = np.random.default_rng([self.seed, self.epoch])
        order = np.concatenate([rng.permutation(self.rows)
                                for _ in range(math.ceil(self.steps * self.batch_size / len(self.rows)))])
        n_bins = self.data.meta["n_bins"]
        for b in range(self.steps):
            rows = np.sort(order[b * self.batch_size:(b + 1) * self.batch_size])
            genes = np.asarray(self.data.genes[rows]).reshape(-1, self.data.genes.shape[2])  # views interleaved
            bins = np.asarray(self.data.bins[rows]).reshape(genes.shape)
            yield model_inputs(genes, bins, mask_rows(genes, self.mask_fraction, rng), n_bins)


def position_scores(log_probs: torch.Tensor, targets: torch.Tensor) -> dict[str, np.ndarray]:
    """Per masked position: ``nll``, argmax ``pred``, ``expected`` bin under the predicted distribution.

    log_probs : float (n, n_bins); targets : int64 (n,).
    """
    log_probs = log_probs.float()
    bins = torch.arange(log_probs.shape[1], device=log_probs.device, dtype=torch.float32)
    return {"nll": (-log_probs.gather(1, targets[:, None])[:, 0]).cpu().numpy(),
            "pred": log_probs.argmax(1).cpu().numpy(),
            "expected": (log_probs.exp() @ bins).cpu().numpy()}


@torch.no_grad()
def predict_masked(model: CellTransformer, data: Tokenized, rows: np.ndarray, *, mask_fraction: float, seed: int,
                   batch_size: int, device: torch.device, amp: bool = True) -> dict[str, np.ndarray]:
    """Score the model at the fixed masked positions of view 0 of ``rows``.

    Returns
    -------
    dict of ndarray, shape (n_masked,) each
        ``nll``, ``pred`` (argmax bin), ``expected`` (mean bin), ``targets`` (true bin), ``expr``
        (true log-normalized expression), ``row`` (index into ``rows``).
    """
    from omicslm.train import autocast

    n_bins = data.meta["n_bins"]
    mask = eval_mask(data, rows, fraction=mask_fraction, seed=seed)
    parts = []
    model.eval()
    for start in range(0, len(rows), batch_size):
        sl = slice(start, start + batch_size)
        batch = model_inputs(data.genes[rows[sl], 0], data.bins[rows[sl], 0], mask[sl], n_bins)
        with autocast(device, amp):
            hidden = model(batch["genes"].to(device), batch["values"].to(device))
            _, log_probs, targets = masked_count_nll(model, hidden, batch["labels"].to(device))
        part = position_scores(log_probs, targets)
        part.update(targets=targets.cpu().numpy(), row=start + np.nonzero(mask[sl])[0],
                    expr=np.asarray(data.expr[rows[sl], 0])[mask[sl]])
        parts.append(part)
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def model_config(data: Tokenized, model: dict, head: str) -> ModelConfig:
    """The ModelConfig of a model block, sized to the tokenized data's vocabulary and bins."""
    return ModelConfig(vocab_size=data.meta["vocab_size"], n_bins=data.meta["n_bins"], head=head, **model)


def load_model(checkpoint_dir: str | os.PathLike, device: torch.device | str = "cpu") -> tuple[CellTransformer, dict]:
    """Rebuild a trained model from its checkpoint alone (``config.json`` holds its ModelConfig)."""
    run_config = read_checkpoint_config(checkpoint_dir)
    model = CellTransformer(ModelConfig(**run_config["model"]))
    load_checkpoint(checkpoint_dir, model=model, restore_rng=False)
    return model.to(device).eval(), run_config


def train_model(tokens_dir, out_dir, *, work_dir, name: str, model: dict, loss: dict, train: dict, batch_size: int,
                steps_per_epoch: int | None, max_val_cells: int | None, eval_mask_fraction: float, eval_seed: int,
                threads: int = 1, loss_hook=None) -> dict:
    """Train one model; resumes from ``work_dir/last`` after a killed run.

    Parameters
    ----------
    tokens_dir : path
        Tokenized data set (:mod:`omicslm.scrna.tokenize`).
    out_dir : path
        Receives ``best/`` (checkpoint), ``history.tsv`` and ``train_summary.json``.
    work_dir : path
        The loop's resumable ``last/``, ``best/``, ``tensorboard/``; keep it outside declared outputs.
    model : dict
        :class:`ModelConfig` sizes (``d_model``, ``heads``, ``ffn``, ``layers``, ``dropout``, ...).
    loss : dict
        ``head`` (ce / ordinal / gaussian), ``mask_fraction``, ``clip_weight``, ``clip_temperature``.
    train : dict
        :class:`omicslm.train.TrainConfig` options.
    steps_per_epoch : int, optional
        Batches per epoch; None: one pass over the training cells.
    max_val_cells : int, optional
        Validation cells scored each epoch (the first ones of the split); None: all.
    loss_hook : callable, optional
        Called as ``loss_hook(epoch)`` before every batch (tests interrupt a run with it).
    """
    started = time.perf_counter()
    torch.set_num_threads(max(1, int(threads)))
    data = load_tokenized(tokens_dir)
    tcfg = TrainConfig.from_dict(train)
    mcfg = model_config(data, model, loss["head"])
    train_rows, val_rows = data.rows("train"), data.rows("validation")[:max_val_cells]
    if len(val_rows) == 0:
        raise ValueError(f"{tokens_dir}: no validation cells; set scrna.split.validation_fraction > 0")
    steps = steps_per_epoch or math.ceil(len(train_rows) / batch_size)
    device = pick_device(tcfg.device)
    set_seed(tcfg.seed)  # the model's initial weights come from train.seed, as the config says
    net = CellTransformer(mcfg)
    train_bins = np.asarray(data.bins[train_rows]).ravel()
    net.head.init_from_marginal(np.bincount(train_bins[train_bins >= 0], minlength=mcfg.n_bins))

    def train_batches(epoch: int) -> EpochBatches:
        return EpochBatches(data, train_rows, batch_size=batch_size, steps=steps, mask_fraction=loss["mask_fraction"],
                            seed=tcfg.seed, epoch=epoch)

    def loss_fn(m, batch, epoch):
        if loss_hook is not None:
            loss_hook(epoch)
        return training_loss(m, to_device(batch, device), clip_weight=loss["clip_weight"],
                             temperature=loss["clip_temperature"])

    def validate(m, epoch):
        pred = predict_masked(m, data, val_rows, mask_fraction=eval_mask_fraction, seed=eval_seed,
                              batch_size=batch_size * data.meta["n_views"], device=device, amp=tcfg.amp)
        return {"val_loss": float(pred["nll"].mean()), "val_accuracy": float((pred["pred"] == pred["targets"]).mean())}

    # the train block too: a finished run must not stand for a longer one (max_epochs, the LR schedule changed)
    run_config = {"name": name, "model": mcfg.to_dict(), "loss": loss, "batch_size": batch_size, "train": train,
                  "steps_per_epoch": steps, "tokens": data.meta, "eval": [eval_mask_fraction, eval_seed]}
    log.info("%s: %d train / %d validation cells, %d bins, %s head, clip weight %g", name, len(train_rows),
             len(val_rows), mcfg.n_bins, mcfg.head, loss["clip_weight"])
    state = fit(net, train_batches, loss_fn, validate, tcfg, work_dir, run_config=run_config, steps_per_epoch=steps)
    publish_run(work_dir, out_dir, summary_name="train_summary.json", summary={
        "model": name, "best_epoch": state["best_epoch"], "best_val_loss": state["best_metric"],
        "epochs_run": state["epochs_run"], "optimizer_steps": state["global_step"],
        "steps_per_epoch": math.ceil(steps / tcfg.grad_accum), "stopped_early": state["stopped_early"],
        "train_seconds": train_seconds(state["history"]), "this_run_seconds": time.perf_counter() - started,
        "device": str(device), "parameters": sum(p.numel() for p in net.parameters())})
    log.info("%s: best val masked-count NLL %.4f at epoch %d (log n_bins = %.3f)", name, state["best_metric"],
             state["best_epoch"] + 1, math.log(mcfg.n_bins))
    return state
