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
import functools
import itertools
import logging
import math
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterable

import torch
from tqdm import tqdm

from omicslm.io.atomic import atomic_open
from omicslm.train.checkpoint import checkpoint_exists, load_checkpoint, read_checkpoint_config, save_checkpoint
from omicslm.train.config import TrainConfig
from omicslm.train.device import autocast, pick_device, set_seed, to_device
from omicslm.train.distributed import DataParallel, NullWriter
from omicslm.train.run_config import check_run_config, jsonable, set_aside_previous_run
from omicslm.train.schedule import lr_lambda

__all__ = ["TrainConfig", "fit", "to_device"]

log = logging.getLogger(__name__)


def _make_optimizer(model: torch.nn.Module, cfg: TrainConfig, device: torch.device) -> torch.optim.AdamW:
    # decay only matrices (weights of linear / embedding layers): decaying biases and norm
    # gains just pulls them to 0 without regularising anything (nanoGPT, BERT practice)
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    groups = [{"params": group, "weight_decay": wd}
              for group, wd in ((decay, cfg.weight_decay), (no_decay, 0.0)) if group]
    kwargs = {"fused": True} if device.type == "cuda" else {}
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas, **kwargs)


def _batches_per_epoch(train_batches: Callable[[int], Iterable[Any]], steps_per_epoch: int | None) -> int:
    if steps_per_epoch is not None:
        if steps_per_epoch < 1:
            raise ValueError(f"steps_per_epoch must be >= 1, got {steps_per_epoch}")
        return int(steps_per_epoch)
    try:
        return len(train_batches(0))
    except TypeError:
        raise ValueError("train_batches(0) has no len(); pass steps_per_epoch (batches per epoch) "
                         "so the lr schedule knows its length") from None


def _improved(value: float, best: float | None, mode: str) -> bool:
    if value is None or math.isnan(value):
        return False
    if best is None:
        return True
    return value < best if mode == "min" else value > best


def _write_history(path: Path, history: list[dict]) -> None:
    columns: list[str] = []
    for row in history:
        columns += [k for k in row if k not in columns]
    with atomic_open(path) as fh:
        fh.write("\t".join(columns) + "\n")
        for row in history:
            fh.write("\t".join(_fmt_cell(row.get(c)) for c in columns) + "\n")


def _fmt_cell(value: Any) -> str:
    if value is None:
        return "NA"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _new_state(cfg: TrainConfig) -> dict:
    return {
        "epoch": 0,               # epoch in progress (0-based); == max_epochs when all ran
        "step_in_epoch": 0,       # optimizer steps done in that epoch
        "global_step": 0,         # optimizer steps done overall
        "epoch_loss_sum": 0.0,    # running train-loss sum / count of the epoch in progress
        "epoch_loss_count": 0,
        "epoch_seconds": 0.0,     # wall time already spent on the epoch in progress
        "best_metric": None,
        "best_epoch": None,
        "bad_epochs": 0,          # epochs since the last improvement (patience counter)
        "epochs_run": 0,
        "stopped_early": False,
        "done": False,
        "metric": cfg.early_stopping_metric,
        "mode": cfg.early_stopping_mode,
        "history": [],
        "train_config": jsonable(dataclasses.asdict(cfg)),
    }


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
        return _fit(model, train_batches, loss_fn, validate, cfg, Path(out_dir), jsonable(run_config),
                    steps_per_epoch, on_epoch_end, restore_best, device, ddp, on_config_change)
    finally:
        if ddp is not None:
            ddp.close()


def _fit(model, train_batches, loss_fn, validate, cfg: TrainConfig, out_dir: Path, run_config: dict,
         steps_per_epoch, on_epoch_end, restore_best: bool, device: torch.device, ddp: DataParallel | None,
         on_config_change: str = "restart") -> dict:
    last_dir, best_dir = out_dir / "last", out_dir / "best"
    # ranks differ in their random streams (dropout) and agree on data: train_batches seeds its own generators
    set_seed(_seed(cfg, ddp, 0))
    if ddp is not None:
        if ddp.main:  # repair an interrupted checkpoint swap once, not racing on every rank
            checkpoint_exists(last_dir), checkpoint_exists(best_dir)
        ddp.barrier()

    resuming = checkpoint_exists(last_dir)
    saved = read_checkpoint_config(last_dir) if resuming else None
    if resuming and saved != run_config:
        if on_config_change != "restart":
            check_run_config(last_dir, run_config)  # raises, naming the keys that differ
        if ddp is not None:
            ddp.barrier()  # every rank has read the old config before it moves
        if ddp is None or ddp.main:
            set_aside_previous_run(out_dir, saved, run_config)
        if ddp is not None:
            ddp.barrier()
        resuming = False

    model.to(device)
    optimizer = _make_optimizer(model, cfg, device)
    n_batches = _batches_per_epoch(train_batches, steps_per_epoch)
    steps_per_epoch_opt = math.ceil(n_batches / cfg.grad_accum)
    total_steps = steps_per_epoch_opt * cfg.max_epochs
    # A schedule shorter than the run decays over schedule_steps, then holds min_lr_ratio (the scRNA seed's
    # "cosine to 5e-4 over 10,000 steps, then flat"); lr_lambda is flat after its total_steps.
    sched_steps = cfg.schedule_steps if cfg.schedule_steps is not None else total_steps
    if cfg.warmup_steps >= total_steps:
        log.warning("warmup_steps %d >= total optimizer steps %d: the lr never reaches its peak %g",
                    cfg.warmup_steps, total_steps, cfg.lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, functools.partial(
        lr_lambda, warmup_steps=cfg.warmup_steps, total_steps=sched_steps, schedule=cfg.schedule,
        min_lr_ratio=cfg.min_lr_ratio))

    if resuming:
        main = ddp is None or ddp.main
        state = load_checkpoint(last_dir, model=model, optimizer=optimizer, scheduler=scheduler, map_location=device,
                                restore_rng=main)
        if not main:  # rank 0's generator states are in the checkpoint; give the others their own again
            set_seed(_seed(cfg, ddp, state["global_step"]))
        if state.get("done"):
            log.info("%s: training already finished (%d epochs, best %s %s at epoch %s); nothing to do",
                     out_dir, state["epochs_run"], state["metric"], state["best_metric"], state["best_epoch"])
            if restore_best and checkpoint_exists(best_dir):
                load_checkpoint(best_dir, model=model, restore_rng=False)
            return state
        log.info("resuming %s at epoch %d, step %d of the epoch (global step %d)",
                 last_dir, state["epoch"] + 1, state["step_in_epoch"], state["global_step"])
    else:
        state = _new_state(cfg)
        log.info("training on %s: %d epochs x %d optimizer steps (%d batches, grad_accum %d), %d parameters",
                 device, cfg.max_epochs, steps_per_epoch_opt, n_batches, cfg.grad_accum,
                 sum(p.numel() for p in model.parameters()))

    if ddp is None or ddp.main:
        from torch.utils.tensorboard import SummaryWriter  # imports tensorboard (slow); only when training
        # purge_step hides events a killed run logged after its last checkpoint, so curves do not double back
        writer = SummaryWriter(str(out_dir / "tensorboard"), purge_step=state["global_step"] if resuming else None)
    else:
        writer = NullWriter()
    try:
        _train(model, train_batches, loss_fn, validate, cfg, state, optimizer, scheduler, device, writer,
               out_dir, run_config, n_batches, on_epoch_end, ddp)
    finally:
        writer.close()
    if ddp is not None:
        ddp.barrier()  # rank 0 has written best/ and last/
    if restore_best and checkpoint_exists(best_dir):
        load_checkpoint(best_dir, model=model, restore_rng=False)
    return state


def _seed(cfg: TrainConfig, ddp: DataParallel | None, global_step: int) -> int:
    """Rank 0 (and a single process) uses ``cfg.seed``; other ranks a seed no rank uses at any step."""
    return cfg.seed if ddp is None else cfg.seed + ddp.world * global_step + ddp.rank


def _train(model, train_batches, loss_fn, validate, cfg: TrainConfig, state: dict, optimizer, scheduler,
           device: torch.device, writer, out_dir: Path, run_config: dict, n_batches: int, on_epoch_end,
           ddp: DataParallel | None) -> None:
    """Run epochs ``state['epoch']`` .. ``max_epochs - 1``, updating ``state`` in place."""
    last_dir, best_dir = out_dir / "last", out_dir / "best"
    params = [p for p in model.parameters() if p.requires_grad]
    main = ddp is None or ddp.main
    if ddp is None:
        def compute(batch, epoch):
            return loss_fn(model, batch, epoch)
    else:
        compute = ddp.wrap(model, loss_fn)

    def save_last() -> None:
        if main:
            save_checkpoint(last_dir, model=model, optimizer=optimizer, scheduler=scheduler, state=state,
                            config=run_config)

    for epoch in range(state["epoch"], cfg.max_epochs):
        model.train()
        started = time.perf_counter() - state["epoch_seconds"]
        batches = train_batches(epoch)
        skip = state["step_in_epoch"] * cfg.grad_accum
        it = iter(batches)
        if skip:
            # consume (not just count) the done batches so the iterator's own state advances identically
            for _ in itertools.islice(it, skip):
                pass
        try:
            total = len(batches)
        except TypeError:
            total = n_batches
        bar = tqdm(total=total, initial=skip, desc=f"epoch {epoch + 1}/{cfg.max_epochs}", file=sys.stderr,
                   unit="batch", leave=False, dynamic_ncols=True, disable=not main)
        window_loss, window_n, window_logs = 0.0, 0, {}
        group_loss, group_n = None, 0
        optimizer.zero_grad(set_to_none=True)

        def step() -> None:
            nonlocal group_loss, group_n, window_loss, window_n
            grad_norm = None
            if cfg.max_grad_norm is not None:
                grad_norm = torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            if ddp is not None:  # every rank's share of the global batches' loss
                group_loss = ddp.mean(group_loss)
            # one host sync per optimizer step: the loss sum of the group's batches
            loss_sum = float(group_loss)
            if not math.isfinite(loss_sum):
                raise FloatingPointError(f"non-finite training loss {loss_sum} at epoch {epoch + 1}, global step "
                                         f"{state['global_step'] + 1}; lower lr or check the inputs")
            state["epoch_loss_sum"] += loss_sum
            state["epoch_loss_count"] += group_n
            window_loss += loss_sum
            window_n += group_n
            group_loss, group_n = None, 0
            state["global_step"] += 1
            state["step_in_epoch"] += 1
            gs = state["global_step"]
            if gs % cfg.log_every_steps == 0:
                mean = window_loss / window_n
                writer.add_scalar("train/loss", mean, gs)
                writer.add_scalar("train/lr", scheduler.get_last_lr()[0], gs)
                if grad_norm is not None:
                    writer.add_scalar("train/grad_norm", float(grad_norm), gs)
                for k, v in window_logs.items():
                    writer.add_scalar(f"train/{k}", v[0] / v[1], gs)
                bar.set_postfix(loss=f"{mean:.4g}", lr=f"{scheduler.get_last_lr()[0]:.3g}")
                window_loss, window_n = 0.0, 0
                window_logs.clear()
            if gs % cfg.checkpoint_every_steps == 0:
                state["epoch_seconds"] = time.perf_counter() - started
                save_last()

        n_in_group, unsynced = 0, False
        for i, batch in enumerate(it, start=skip):
            if ddp is None:
                with autocast(device, cfg.amp):
                    loss, logs = compute(batch, epoch)
                (loss / cfg.grad_accum).backward()
            else:
                batch, weight = ddp.shard(batch)
                # gradients are all-reduced in backward, so only on the last batch of a group
                unsynced = n_in_group + 1 < cfg.grad_accum and i + 1 < total
                with ddp.no_sync(compute, unsynced):
                    with autocast(device, cfg.amp):
                        loss, logs = compute(batch, epoch)
                    loss = loss * weight
                    (loss / cfg.grad_accum).backward()
            detached = loss.detach().float()
            group_loss = detached if group_loss is None else group_loss + detached
            group_n += 1
            for k, v in (logs or {}).items():
                s, n = window_logs.get(k, (0.0, 0))
                window_logs[k] = (s + float(v), n + 1)
            n_in_group += 1
            bar.update(1)
            if n_in_group == cfg.grad_accum:
                step()
                n_in_group = 0
        if n_in_group:
            if unsynced:  # the epoch yielded fewer than `total` batches
                ddp.average_gradients(params)
            step()
        bar.close()
        if state["epoch_loss_count"] == 0:
            raise ValueError(f"train_batches({epoch}) yielded no batches")

        model.eval()
        with torch.no_grad():
            metrics = dict(validate(model, epoch))
        if ddp is not None:  # rank 0's numbers, so every rank takes the same early-stopping decision
            metrics = ddp.broadcast(metrics)
        model.train()
        train_loss = state["epoch_loss_sum"] / state["epoch_loss_count"]
        metrics_all = {"train_loss": train_loss, **metrics}
        name = cfg.early_stopping_metric
        if name not in metrics_all:
            raise KeyError(f"validate() returned {sorted(metrics)} but early_stopping_metric is {name!r}")
        value = float(metrics_all[name])
        improved = _improved(value, state["best_metric"], cfg.early_stopping_mode)
        seconds = time.perf_counter() - started
        row = {"epoch": epoch, "train_loss": train_loss, **{k: float(v) for k, v in metrics.items()},
               "lr": scheduler.get_last_lr()[0], "seconds": round(seconds, 3)}
        state["history"].append(row)
        state["epochs_run"] = epoch + 1
        if improved:
            state["best_metric"], state["best_epoch"], state["bad_epochs"] = value, epoch, 0
        else:
            state["bad_epochs"] += 1
        stop = state["bad_epochs"] >= cfg.patience
        state.update(epoch=epoch + 1, step_in_epoch=0, epoch_loss_sum=0.0, epoch_loss_count=0, epoch_seconds=0.0,
                     stopped_early=stop and epoch + 1 < cfg.max_epochs)
        state["done"] = stop or epoch + 1 >= cfg.max_epochs
        if improved and main:
            save_checkpoint(best_dir, model=model, state=state, config=run_config)
        save_last()
        if main:
            _write_history(out_dir / "history.tsv", state["history"])

        gs = state["global_step"]
        for k, v in metrics_all.items():
            writer.add_scalar(f"epoch/{k}", float(v), gs)
        writer.add_scalar("epoch", epoch, gs)
        writer.flush()
        shown = " ".join(f"{k} {float(v):.4g}" for k, v in metrics_all.items())
        log.info("epoch %d/%d %s%s %.1f s", epoch + 1, cfg.max_epochs, shown, " (best)" if improved else "", seconds)
        if on_epoch_end is not None and main:
            on_epoch_end(epoch, row)
        if stop:
            log.info("early stopping: %s has not improved for %d epochs; best %.4g at epoch %d",
                     name, cfg.patience, state["best_metric"], state["best_epoch"] + 1)
            break
