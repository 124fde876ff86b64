"""The training loop every model branch uses: AdamW, warmup + decay, early stopping, resume.

:func:`fit` owns the optimizer, schedule, mixed precision, checkpoints and logs; a
branch supplies only its model and three callables:

* ``train_batches(epoch)`` -> iterable of raw batches. It must yield the SAME batches
  in the same order whenever it is called with the same epoch (e.g. shuffle with
  ``torch.Generator().manual_seed(seed + epoch)``, never with the global generator),
  because a resumed run re-creates the epoch and skips the batches already done.
* ``loss_fn(model, batch, epoch)`` -> ``(loss, logs)``: receives the raw batch and
  moves it itself (:func:`to_device` helps); ``loss`` is a scalar tensor, ``logs``
  a dict of floats shown in TensorBoard.
* ``validate(model, epoch)`` -> dict of metrics including
  ``cfg.early_stopping_metric``; called in eval mode under ``torch.no_grad()``.

Layout of ``out_dir``::

    last/          checkpoint every ``checkpoint_every_steps`` optimizer steps and at each epoch end
    best/          weights of the best epoch so far (early-stopping metric)
    tensorboard/   train loss / lr / grad norm every ``log_every_steps``, every val metric per epoch
    history.tsv    one row per epoch: epoch, train_loss, val metrics, lr, seconds

Epochs are 0-based in the callables, ``history.tsv`` and the returned state; the log
line counts from 1 ("epoch 1/10"), like Keras.

Under ``torchrun`` (several processes) every rank calls :func:`fit` with the same model and
callables: ``train_batches`` yields the global batches (the same on every rank, which the
rule above already ensures), each rank trains on its slice of each, and only rank 0
writes ``out_dir`` (:mod:`omicslm.train.distributed`).
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import math
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterable

import torch
from tqdm import tqdm

from omicslm.errors import InputError
from omicslm.train.checkpoint import save_checkpoint
from omicslm.train.config import TrainConfig
from omicslm.train.device import autocast, pick_device, set_seed, to_device
from omicslm.train.distributed import DataParallel
from omicslm.train.run_config import jsonable
from omicslm.train.run_setup import (batches_per_epoch, load_best, make_optimizer, make_scheduler, open_writer,
                                      quarantine, rank_seed, resumable, resume, write_history)
from omicslm.train.state import TrainState

__all__ = ["TrainConfig", "fit", "to_device"]

log = logging.getLogger(__name__)


def fit(model: torch.nn.Module,
        train_batches: Callable[[int], Iterable[Any]],
        loss_fn: Callable[[torch.nn.Module, Any, int], tuple[torch.Tensor, dict[str, float]]],
        validate: Callable[[torch.nn.Module, int], dict[str, float]],
        cfg: TrainConfig,
        out_dir: str | Path,
        *, run_config: dict,
        steps_per_epoch: int | None = None,
        on_epoch_end: Callable[[int, dict], None] | None = None,
        restore_best: bool = True,
        shard_batch: Callable[[Any, int, int], tuple[Any, float]] | None = None,
        on_config_change: str = "restart",
        ) -> dict:
    """Train ``model`` with early stopping, resuming from ``out_dir/last`` when it exists.

    Under ``torchrun`` with several processes this is data-parallel training (DDP) with
    the same global batch; see :mod:`omicslm.train.distributed`.

    Parameters
    ----------
    model : torch.nn.Module
        Moved to ``pick_device(cfg.device)`` and trained in place.
    train_batches : callable
        ``epoch -> iterable of batches``, deterministic per epoch (see module docstring).
    loss_fn : callable
        ``(model, raw batch, epoch) -> (scalar loss tensor, dict of float logs)``; runs
        under bf16 autocast on CUDA when ``cfg.amp``.
    validate : callable
        ``(model, epoch) -> dict of float metrics`` including ``cfg.early_stopping_metric``.
    cfg : TrainConfig
    out_dir : path
        Receives ``last/``, ``best/``, ``tensorboard/`` and ``history.tsv``.
    run_config : dict
        Resolved config saved as every checkpoint's ``config.json``. Only a checkpoint made
        with the same one is resumed (see ``on_config_change``).
    steps_per_epoch : int, optional
        Batches ``train_batches(epoch)`` yields per epoch, for the schedule length
        (default ``len(train_batches(0))``). Optimizer steps per epoch =
        ``ceil(steps_per_epoch / grad_accum)``; a last partial accumulation group still steps.
    on_epoch_end : callable, optional
        ``(epoch, history row) -> None`` after each epoch's checkpoint is written.
    restore_best : bool
        Load ``best/`` weights into ``model`` before returning, so the caller predicts
        with the best epoch rather than the last.
    shard_batch : callable, optional
        Under torchrun: ``(batch, rank, world) -> (this rank's part, its share of the rows)``;
        default :func:`omicslm.train.distributed.shard_rows` (contiguous rows of every tensor).
    on_config_change : "restart" | "error"
        What to do when ``out_dir/last`` was made with another ``run_config`` (the workflow
        reruns a training step because a parameter changed): ``restart`` moves that run
        (``last/``, ``best/``, ``history.tsv``, ``tensorboard/``) to ``out_dir/previous_config/``
        (replacing an older one there), logs a warning and trains from scratch; ``error``
        raises ``InputError`` naming the keys that differ.

    Returns
    -------
    dict
        The final trainer state: ``best_metric``, ``best_epoch``, ``epochs_run``,
        ``stopped_early``, ``history`` (list of per-epoch rows), ``global_step``, ...
    """
    device = pick_device(cfg.device)
    ddp = DataParallel.start(device, shard_batch)
    try:
        return _fit(model, train_batches, loss_fn, validate, cfg, Path(out_dir), run_config=jsonable(run_config),
                    steps_per_epoch=steps_per_epoch, on_epoch_end=on_epoch_end, restore_best=restore_best,
                    device=device, ddp=ddp, on_config_change=on_config_change)
    finally:
        if ddp is not None:
            ddp.close()


def _fit(model, train_batches, loss_fn, validate, cfg: TrainConfig, out_dir: Path, *, run_config: dict,
         steps_per_epoch: int | None, on_epoch_end, restore_best: bool, device: torch.device,
         ddp: DataParallel | None, on_config_change: str) -> dict:
    """:func:`fit` once the device and the process group are set up."""
    # ranks differ in their random streams (dropout) and agree on data: train_batches seeds its own generators
    set_seed(rank_seed(cfg, ddp, 0))
    resuming = resumable(out_dir, run_config, ddp=ddp, on_config_change=on_config_change)
    model.to(device)
    optimizer = make_optimizer(model, cfg, device)
    n_batches = batches_per_epoch(train_batches, steps_per_epoch)
    optimizer_steps = math.ceil(n_batches / cfg.grad_accum)
    scheduler = make_scheduler(optimizer, cfg, steps_per_epoch=optimizer_steps)
    if resuming:
        initial = {k: v.detach().clone() for k, v in model.state_dict().items()}
        try:
            state = resume(out_dir / "last", model=model, optimizer=optimizer, scheduler=scheduler, cfg=cfg,
                           device=device, ddp=ddp)
        except InputError as exc:  # a garbled file in last/: set it aside, start over from the initial weights
            if ddp is None or ddp.main:
                quarantine(out_dir / "last", exc)
            if ddp is not None:
                ddp.barrier()
            model.load_state_dict(initial)
            optimizer = make_optimizer(model, cfg, device)
            scheduler = make_scheduler(optimizer, cfg, steps_per_epoch=optimizer_steps)
            set_seed(rank_seed(cfg, ddp, 0))
            resuming = False
    if resuming:
        if state.done:
            log.info("%s: training already finished (%d epochs, best %s %s at epoch %s); nothing to do",
                     out_dir, state.epochs_run, state.metric, state.best_metric, state.best_epoch)
            if restore_best:
                load_best(model, out_dir)
            return state.to_dict()
        log.info("resuming %s at epoch %d, step %d of the epoch (global step %d)",
                 out_dir / "last", state.epoch + 1, state.step_in_epoch, state.global_step)
    else:
        state = TrainState.start(cfg)
        log.info("training on %s: %d epochs x %d optimizer steps (%d batches, grad_accum %d), %d parameters",
                 device, cfg.max_epochs, optimizer_steps, n_batches, cfg.grad_accum,
                 sum(p.numel() for p in model.parameters()))

    writer = open_writer(out_dir, ddp, purge_step=state.global_step if resuming else None)
    try:
        run = _Run(model=model, cfg=cfg, optimizer=optimizer, scheduler=scheduler, device=device, ddp=ddp,
                   out_dir=out_dir, run_config=run_config, writer=writer)
        _train(run, state, train_batches=train_batches, loss_fn=loss_fn, validate=validate, n_batches=n_batches,
               on_epoch_end=on_epoch_end)
    finally:
        writer.close()
    if ddp is not None:
        ddp.barrier()  # rank 0 has written best/ and last/
    if restore_best:
        load_best(model, out_dir)
    return state.to_dict()


@dataclasses.dataclass
class _Run:
    """What stays fixed while a run trains (what changes is its :class:`TrainState`)."""

    model: torch.nn.Module
    cfg: TrainConfig
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    device: torch.device
    ddp: DataParallel | None
    out_dir: Path
    run_config: dict
    writer: Any  # SummaryWriter on the process that writes out_dir, NullWriter on the others
    params: list[torch.nn.Parameter] = dataclasses.field(init=False)  # the trainable ones (clipped)

    def __post_init__(self):
        self.params = [p for p in self.model.parameters() if p.requires_grad]

    @property
    def main(self) -> bool:
        """This process writes ``out_dir`` (the only process, or rank 0)."""
        return self.ddp is None or self.ddp.main

    def lr(self) -> float:
        return self.scheduler.get_last_lr()[0]

    def save_last(self, state: TrainState) -> None:
        """The resumable checkpoint ``last/`` (weights, optimizer, schedule, generators, state)."""
        if self.main:
            save_checkpoint(self.out_dir / "last", model=self.model, optimizer=self.optimizer,
                            scheduler=self.scheduler, state=state.to_dict(), config=self.run_config)

    def save_best(self, state: TrainState) -> None:
        if self.main:
            save_checkpoint(self.out_dir / "best", model=self.model, state=state.to_dict(), config=self.run_config)


@dataclasses.dataclass
class _Epoch:
    """The epoch in progress: the losses of the accumulation group and of the TensorBoard window."""

    index: int
    started: float  # time.perf_counter() at its start (earlier by the seconds done before a resume)
    bar: tqdm
    group_loss: torch.Tensor | None = None  # loss sum of the group's batches, on the device (no host sync)
    group_n: int = 0
    window_loss: float = 0.0  # loss sum / count of the batches since the last TensorBoard write
    window_n: int = 0
    window_logs: dict[str, tuple[float, int]] = dataclasses.field(default_factory=dict)  # loss_fn's logs

    def add_batch(self, loss: torch.Tensor, logs: dict | None) -> None:
        self.group_loss = loss if self.group_loss is None else self.group_loss + loss
        self.group_n += 1
        for k, v in (logs or {}).items():
            s, n = self.window_logs.get(k, (0.0, 0))
            self.window_logs[k] = (s + float(v), n + 1)
        self.bar.update(1)

    def end_group(self, loss_sum: float) -> int:
        """Move the group's loss (``loss_sum``, summed over ranks) into the window; return its batch count."""
        n = self.group_n
        self.window_loss += loss_sum
        self.window_n += n
        self.group_loss, self.group_n = None, 0
        return n


def _train(run: _Run, state: TrainState, *, train_batches, loss_fn, validate, n_batches: int,
           on_epoch_end) -> None:
    """Run epochs ``state.epoch`` .. ``max_epochs - 1``, updating ``state`` in place."""
    if run.ddp is None:
        def compute(batch, epoch):
            return loss_fn(run.model, batch, epoch)
    else:
        compute = run.ddp.wrap(run.model, loss_fn)
    for epoch in range(state.epoch, run.cfg.max_epochs):
        started = _run_epoch(run, state, epoch=epoch, train_batches=train_batches, compute=compute,
                             n_batches=n_batches)
        metrics = _validate(run, validate, epoch=epoch)
        if _end_epoch(run, state, epoch=epoch, started=started, metrics=metrics, on_epoch_end=on_epoch_end):
            break


def _run_epoch(run: _Run, state: TrainState, *, epoch: int, train_batches, compute, n_batches: int) -> float:
    """Train ``epoch`` from its optimizer step ``state.step_in_epoch`` on; return its start time.

    A resumed epoch re-creates its batches and consumes (not just counts) the ones already
    done, so the iterator's own state advances as in an uninterrupted run.
    """
    cfg = run.cfg
    run.model.train()
    started = time.perf_counter() - state.epoch_seconds
    batches = train_batches(epoch)
    skip = state.step_in_epoch * cfg.grad_accum
    it = iter(batches)
    for _ in itertools.islice(it, skip):
        pass
    total = _length(batches, default=n_batches)
    bar = tqdm(total=total, initial=skip, desc=f"epoch {epoch + 1}/{cfg.max_epochs}", file=sys.stderr,
               unit="batch", leave=False, dynamic_ncols=True, disable=not run.main)
    ep = _Epoch(epoch, started, bar)
    unsynced = False
    run.optimizer.zero_grad(set_to_none=True)
    for i, batch in enumerate(it, start=skip):
        # under DDP gradients are all-reduced in backward, so only on the last batch of a group
        unsynced = run.ddp is not None and ep.group_n + 1 < cfg.grad_accum and i + 1 < total
        ep.add_batch(*_forward_backward(run, compute, batch, epoch=epoch, sync=not unsynced))
        if ep.group_n == cfg.grad_accum:
            _optimizer_step(run, state, ep)
    if ep.group_n:  # a last partial group still steps
        if unsynced:  # the epoch yielded fewer than `total` batches
            run.ddp.average_gradients(run.params)
        _optimizer_step(run, state, ep)
    bar.close()
    if state.epoch_loss_count == 0:
        raise ValueError(f"train_batches({epoch}) yielded no batches")
    return started


def _length(batches, *, default: int) -> int:
    try:
        return len(batches)
    except TypeError:
        return default


def _forward_backward(run: _Run, compute, batch, *, epoch: int, sync: bool) -> tuple[torch.Tensor, dict | None]:
    """One batch's loss and its backward (scaled for accumulation); return the detached loss and the logs.

    Under DDP this rank runs its shard of ``batch``, its loss weighted by its share of the rows;
    ``sync`` False accumulates the gradients locally (DDP's ``no_sync``).
    """
    if run.ddp is None:
        with autocast(run.device, run.cfg.amp):
            loss, logs = compute(batch, epoch)
        (loss / run.cfg.grad_accum).backward()
        return loss.detach().float(), logs
    batch, weight = run.ddp.shard(batch)
    with run.ddp.no_sync(compute, not sync):
        with autocast(run.device, run.cfg.amp):
            loss, logs = compute(batch, epoch)
        loss = loss * weight
        (loss / run.cfg.grad_accum).backward()
    return loss.detach().float(), logs


def _optimizer_step(run: _Run, state: TrainState, ep: _Epoch) -> None:
    """Clip, step the optimizer and schedule, count the step; log and checkpoint when due."""
    cfg = run.cfg
    grad_norm = None
    if cfg.max_grad_norm is not None:
        grad_norm = torch.nn.utils.clip_grad_norm_(run.params, cfg.max_grad_norm)
    run.optimizer.step()
    run.scheduler.step()
    run.optimizer.zero_grad(set_to_none=True)
    group_loss = ep.group_loss if run.ddp is None else run.ddp.mean(ep.group_loss)  # every rank's share
    # one host sync per optimizer step: the loss sum of the group's batches
    loss_sum = float(group_loss)
    if not math.isfinite(loss_sum):
        raise FloatingPointError(f"non-finite training loss {loss_sum} at epoch {ep.index + 1}, global step "
                                 f"{state.global_step + 1}; lower lr or check the inputs")
    state.add_step(loss_sum, ep.end_group(loss_sum))
    if state.global_step % cfg.log_every_steps == 0:
        _log_steps(run, ep, global_step=state.global_step, grad_norm=grad_norm)
    if state.global_step % cfg.checkpoint_every_steps == 0:
        state.epoch_seconds = time.perf_counter() - ep.started
        run.save_last(state)


def _log_steps(run: _Run, ep: _Epoch, *, global_step: int, grad_norm: torch.Tensor | None) -> None:
    """Write the window's mean train loss and logs, the lr and grad norm to TensorBoard; start a new window."""
    mean = ep.window_loss / ep.window_n
    run.writer.add_scalar("train/loss", mean, global_step)
    run.writer.add_scalar("train/lr", run.lr(), global_step)
    if grad_norm is not None:
        run.writer.add_scalar("train/grad_norm", float(grad_norm), global_step)
    for k, (s, n) in ep.window_logs.items():
        run.writer.add_scalar(f"train/{k}", s / n, global_step)
    ep.bar.set_postfix(loss=f"{mean:.4g}", lr=f"{run.lr():.3g}")
    ep.window_loss, ep.window_n = 0.0, 0
    ep.window_logs.clear()


def _validate(run: _Run, validate, *, epoch: int) -> dict:
    """``validate(model, epoch)`` in eval mode without gradients; under DDP, rank 0's metrics on every rank."""
    run.model.eval()
    with torch.no_grad():
        metrics = dict(validate(run.model, epoch))
    if run.ddp is not None:  # rank 0's numbers, so every rank takes the same early-stopping decision
        metrics = run.ddp.broadcast(metrics)
    run.model.train()
    return metrics


def _end_epoch(run: _Run, state: TrainState, *, epoch: int, started: float, metrics: dict,
               on_epoch_end) -> bool:
    """Close ``epoch`` with its validation ``metrics``: early stopping, checkpoints, history, logs.

    Writes ``best/`` when the epoch improved, ``last/`` and ``history.tsv``; returns True when
    patience has run out.
    """
    cfg = run.cfg
    train_loss = state.train_loss()
    metrics_all = {"train_loss": train_loss, **metrics}
    name = cfg.early_stopping_metric
    if name not in metrics_all:
        raise KeyError(f"validate() returned {sorted(metrics)} but early_stopping_metric is {name!r}")
    value = float(metrics_all[name])
    seconds = time.perf_counter() - started
    row = {"epoch": epoch, "train_loss": train_loss, **{k: float(v) for k, v in metrics.items()},
           "lr": run.lr(), "seconds": round(seconds, 3)}
    improved, stop = state.finish_epoch(epoch, row, value, cfg)
    if improved:
        run.save_best(state)
    run.save_last(state)
    if run.main:
        write_history(run.out_dir / "history.tsv", state.history)
    _log_epoch(run, epoch=epoch, global_step=state.global_step, metrics_all=metrics_all, improved=improved,
               seconds=seconds)
    if on_epoch_end is not None and run.main:
        on_epoch_end(epoch, row)
    if stop:
        log.info("early stopping: %s has not improved for %d epochs; best %.4g at epoch %d",
                 name, cfg.patience, state.best_metric, state.best_epoch + 1)
    return stop


def _log_epoch(run: _Run, *, epoch: int, global_step: int, metrics_all: dict, improved: bool,
               seconds: float) -> None:
    """Every metric of the epoch to TensorBoard (``epoch/<name>``) and the log line ``epoch i/n ...``."""
    for k, v in metrics_all.items():
        run.writer.add_scalar(f"epoch/{k}", float(v), global_step)
    run.writer.add_scalar("epoch", epoch, global_step)
    run.writer.flush()
    shown = " ".join(f"{k} {float(v):.4g}" for k, v in metrics_all.items())
    log.info("epoch %d/%d %s%s %.1f s", epoch + 1, run.cfg.max_epochs, shown, " (best)" if improved else "",
             seconds)
