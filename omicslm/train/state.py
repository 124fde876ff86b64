"""The trainer's progress: what :func:`omicslm.train.fit` checkpoints, resumes from and returns.

:class:`TrainState` is saved as every checkpoint's ``trainer_state.json`` (through
:meth:`TrainState.to_dict`, keys in field order) and read back with
:meth:`TrainState.from_dict`; :func:`omicslm.train.fit` returns its dict. Only
:meth:`~TrainState.add_step` and :meth:`~TrainState.finish_epoch` change it.
"""

from __future__ import annotations

import dataclasses
import math

from omicslm.train.config import TrainConfig
from omicslm.train.run_config import jsonable


@dataclasses.dataclass(kw_only=True)
class TrainState:
    """Progress of a run; epochs are 0-based.

    The fields (and their order) are the keys of ``trainer_state.json``: do not rename them,
    checkpoints of earlier runs must still resume.
    """

    epoch: int = 0                        # epoch in progress (0-based); == max_epochs when all ran
    step_in_epoch: int = 0                # optimizer steps done in that epoch
    global_step: int = 0                  # optimizer steps done overall
    epoch_loss_sum: float = 0.0           # running train-loss sum / count of the epoch in progress
    epoch_loss_count: int = 0
    epoch_seconds: float = 0.0            # wall time already spent on the epoch in progress
    best_metric: float | None = None
    best_epoch: int | None = None
    bad_epochs: int = 0                   # epochs since the last improvement (patience counter)
    epochs_run: int = 0
    stopped_early: bool = False
    done: bool = False
    metric: str                           # cfg.early_stopping_metric
    mode: str                             # cfg.early_stopping_mode
    history: list[dict] = dataclasses.field(default_factory=list)  # one row per finished epoch
    train_config: dict                    # the TrainConfig, as JSON

    @classmethod
    def start(cls, cfg: TrainConfig) -> "TrainState":
        """The state of a run that has not trained yet."""
        return cls(metric=cfg.early_stopping_metric, mode=cfg.early_stopping_mode,
                   train_config=jsonable(dataclasses.asdict(cfg)))

    @classmethod
    def from_dict(cls, state: dict) -> "TrainState":
        """The state a checkpoint's ``trainer_state.json`` holds."""
        return cls(**state)

    def to_dict(self) -> dict:
        """The JSON-ready dict saved as ``trainer_state.json`` (and returned by ``fit``)."""
        return dataclasses.asdict(self)

    def add_step(self, loss_sum: float, n_batches: int) -> None:
        """Count one optimizer step over ``n_batches`` batches whose losses sum to ``loss_sum``."""
        self.epoch_loss_sum += loss_sum
        self.epoch_loss_count += n_batches
        self.global_step += 1
        self.step_in_epoch += 1

    def train_loss(self) -> float:
        """Mean train loss per batch of the epoch in progress."""
        return self.epoch_loss_sum / self.epoch_loss_count

    def finish_epoch(self, epoch: int, row: dict, value: float, cfg: TrainConfig) -> tuple[bool, bool]:
        """Record ``epoch`` (its history ``row`` and early-stopping ``value``); move on to the next one.

        Returns ``(improved, stop)``: ``value`` is the best so far; patience has run out.
        """
        improved = improved_on(value, self.best_metric, cfg.early_stopping_mode)
        self.history.append(row)
        self.epochs_run = epoch + 1
        if improved:
            self.best_metric, self.best_epoch, self.bad_epochs = value, epoch, 0
        else:
            self.bad_epochs += 1
        stop = self.bad_epochs >= cfg.patience
        self.epoch, self.step_in_epoch = epoch + 1, 0
        self.epoch_loss_sum, self.epoch_loss_count, self.epoch_seconds = 0.0, 0, 0.0
        self.stopped_early = stop and epoch + 1 < cfg.max_epochs
        self.done = stop or epoch + 1 >= cfg.max_epochs
        return improved, stop


def improved_on(value: float | None, best: float | None, mode: str) -> bool:
    """True when ``value`` beats ``best`` (None: nothing yet) in ``mode`` ``min`` or ``max``; NaN never does."""
    if value is None or math.isnan(value):
        return False
    if best is None:
        return True
    return value < best if mode == "min" else value > best
