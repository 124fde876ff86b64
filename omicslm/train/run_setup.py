"""Setting up and resuming a run of :func:`omicslm.train.loop.fit`: optimizer, schedule, resume, logs.

The loop itself (:mod:`omicslm.train.loop`) reads as epochs of optimizer steps; what it needs before
the first step and after the last (which checkpoint to resume, how the lr schedule is sized, where
TensorBoard writes, the history table) lives here.
"""

from __future__ import annotations

import functools
import logging
import os
import time
from pathlib import Path
from typing import Any, Callable, Iterable

import torch

from omicslm.errors import InputError
from omicslm.io.atomic import atomic_open
from omicslm.train.checkpoint import checkpoint_exists, load_checkpoint, read_checkpoint_config
from omicslm.train.config import TrainConfig
from omicslm.train.device import set_seed
from omicslm.train.distributed import DataParallel, NullWriter
from omicslm.train.run_config import check_run_config, set_aside_previous_run
from omicslm.train.schedule import lr_lambda
from omicslm.train.state import TrainState

log = logging.getLogger("omicslm.train.loop")  # the loop's logger: its lines read as one run's


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig, device: torch.device) -> torch.optim.AdamW:
    # decay only matrices (weights of linear / embedding layers): decaying biases and norm
    # gains just pulls them to 0 without regularising anything (nanoGPT, BERT practice)
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    groups = [{"params": group, "weight_decay": wd}
              for group, wd in ((decay, cfg.weight_decay), (no_decay, 0.0)) if group]
    kwargs = {"fused": True} if device.type == "cuda" else {}
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas, **kwargs)


def batches_per_epoch(train_batches: Callable[[int], Iterable[Any]], steps_per_epoch: int | None) -> int:
    if steps_per_epoch is not None:
        if steps_per_epoch < 1:
            raise ValueError(f"steps_per_epoch must be >= 1, got {steps_per_epoch}")
        return int(steps_per_epoch)
    try:
        return len(train_batches(0))
    except TypeError:
        raise ValueError("train_batches(0) has no len(); pass steps_per_epoch (batches per epoch) "
                         "so the lr schedule knows its length") from None


def write_history(path: Path, history: list[dict]) -> None:
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


def rank_seed(cfg: TrainConfig, ddp: DataParallel | None, global_step: int) -> int:
    """Rank 0 (and a single process) uses ``cfg.seed``; other ranks a seed no rank uses at any step."""
    return cfg.seed if ddp is None else cfg.seed + ddp.world * global_step + ddp.rank


def resumable(out_dir: Path, run_config: dict, *, ddp: DataParallel | None, on_config_change: str) -> bool:
    """True when ``out_dir/last`` holds a checkpoint made with ``run_config``.

    A run made with another config is set aside (``on_config_change`` "restart") or refused
    (``InputError``), see :func:`fit`.
    """
    last_dir, best_dir = out_dir / "last", out_dir / "best"
    if ddp is not None:
        if ddp.main:  # repair an interrupted checkpoint swap once, not racing on every rank
            checkpoint_exists(last_dir), checkpoint_exists(best_dir)
        ddp.barrier()
    if not checkpoint_exists(last_dir):
        return False
    try:
        saved = read_checkpoint_config(last_dir)
    except InputError as exc:
        if ddp is None or ddp.main:
            quarantine(last_dir, exc)
        if ddp is not None:
            ddp.barrier()
        return False
    if saved == run_config:
        return True
    if on_config_change != "restart":
        check_run_config(last_dir, run_config)  # raises, naming the keys that differ
    if ddp is not None:
        ddp.barrier()  # every rank has read the old config before it moves
    if ddp is None or ddp.main:
        set_aside_previous_run(out_dir, saved, run_config)
    if ddp is not None:
        ddp.barrier()
    return False


def make_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig, *,
                    steps_per_epoch: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Warmup + decay over the run's optimizer steps (``cfg.schedule_steps`` when set)."""
    total_steps = steps_per_epoch * cfg.max_epochs
    # A schedule shorter than the run decays over schedule_steps, then holds min_lr_ratio (the scRNA seed's
    # "cosine to 5e-4 over 10,000 steps, then flat"); lr_lambda is flat after its total_steps.
    sched_steps = cfg.schedule_steps if cfg.schedule_steps is not None else total_steps
    if cfg.warmup_steps >= total_steps:
        log.warning("warmup_steps %d >= total optimizer steps %d: the lr never reaches its peak %g",
                    cfg.warmup_steps, total_steps, cfg.lr)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, functools.partial(
        lr_lambda, warmup_steps=cfg.warmup_steps, total_steps=sched_steps, schedule=cfg.schedule,
        min_lr_ratio=cfg.min_lr_ratio))


def resume(last_dir: Path, *, model, optimizer, scheduler, cfg: TrainConfig, device: torch.device,
            ddp: DataParallel | None) -> TrainState:
    """Load ``last_dir`` into the model, optimizer and schedule (and rank 0's generators); return its state."""
    main = ddp is None or ddp.main
    state = TrainState.from_dict(load_checkpoint(last_dir, model=model, optimizer=optimizer, scheduler=scheduler,
                                                 map_location=device, restore_rng=main))
    if not main:  # rank 0's generator states are in the checkpoint; give the others their own again
        set_seed(rank_seed(cfg, ddp, state.global_step))
    return state


def quarantine(checkpoint_dir: Path, reason: Exception | str, *, then: str = "training starts over") -> Path:
    """Move an unreadable checkpoint to ``<its folder>/quarantine/<name>-<time>`` (kept for a look) with a warning
    that says what happens ``then``."""
    stem = checkpoint_dir.parent / "quarantine" / f"{checkpoint_dir.name}-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"
    stem.parent.mkdir(parents=True, exist_ok=True)
    dest, n = stem, 1
    while dest.exists():  # twice within a second
        dest, n = stem.with_name(f"{stem.name}.{n}"), n + 1
    os.replace(checkpoint_dir, dest)
    log.warning("checkpoint %s is unreadable (%s): moved to %s; %s", checkpoint_dir, reason, dest, then)
    return dest


def load_best(model: torch.nn.Module, out_dir: Path) -> None:
    if checkpoint_exists(out_dir / "best"):
        load_checkpoint(out_dir / "best", model=model, restore_rng=False)


def open_writer(out_dir: Path, ddp: DataParallel | None, *, purge_step: int | None):
    """TensorBoard's ``SummaryWriter`` on ``out_dir/tensorboard`` (rank 0), a :class:`NullWriter` on other ranks."""
    if ddp is not None and not ddp.main:
        return NullWriter()
    from torch.utils.tensorboard import SummaryWriter  # imports tensorboard (slow); only when training
    # purge_step hides events a killed run logged after its last checkpoint, so curves do not double back
    return SummaryWriter(str(out_dir / "tensorboard"), purge_step=purge_step)
