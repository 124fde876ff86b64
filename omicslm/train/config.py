"""Optimisation settings of :func:`omicslm.train.fit`, read from each model branch's ``train`` config block."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from omicslm.train.schedule import SCHEDULES

MODES = ("min", "max")


@dataclass
class TrainConfig:
    """Optimisation settings; every model branch reads these from its config section."""

    max_epochs: int = 10                  # upper bound; early stopping usually ends sooner
    lr: float = 1e-3                      # peak AdamW learning rate, reached after warmup
    weight_decay: float = 0.01            # decoupled decay on matrices only (not biases / norms)
    betas: tuple[float, float] = (0.9, 0.999)
    warmup_steps: int = 100               # optimizer steps of linear warmup from 0
    schedule: str = "cosine"              # constant | linear | cosine decay after warmup
    min_lr_ratio: float = 0.0             # final lr as a fraction of lr
    schedule_steps: int | None = None     # optimizer steps of warmup + decay, then flat at min_lr_ratio; None = the run
    grad_accum: int = 1                   # batches per optimizer step (larger effective batch)
    max_grad_norm: float | None = 1.0     # global-norm clipping against loss spikes; None = off
    amp: bool = True                      # bf16 autocast on CUDA only; ignored on CPU
    early_stopping_metric: str = "val_loss"
    early_stopping_mode: str = "min"      # min | max
    patience: int = 3                     # epochs without improvement before stopping
    checkpoint_every_steps: int = 50      # also at every epoch end
    log_every_steps: int = 10
    seed: int = 0
    device: str = "auto"                  # auto | cpu | cuda

    def __post_init__(self):
        self.betas = tuple(float(b) for b in self.betas)
        problems = []
        if self.schedule not in SCHEDULES:
            problems.append(f"schedule {self.schedule!r} not in {SCHEDULES}")
        if self.early_stopping_mode not in MODES:
            problems.append(f"early_stopping_mode {self.early_stopping_mode!r} not in {MODES}")
        if len(self.betas) != 2:
            problems.append(f"betas must have 2 values, got {self.betas}")
        for name in ("max_epochs", "grad_accum", "patience", "checkpoint_every_steps", "log_every_steps"):
            if int(getattr(self, name)) < 1:
                problems.append(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.warmup_steps < 0:
            problems.append(f"warmup_steps must be >= 0, got {self.warmup_steps}")
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            problems.append(f"min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}")
        if self.schedule_steps is not None and int(self.schedule_steps) < 1:
            problems.append(f"schedule_steps must be >= 1 or None, got {self.schedule_steps}")
        if self.max_grad_norm is not None and self.max_grad_norm <= 0:
            problems.append(f"max_grad_norm must be > 0 or None, got {self.max_grad_norm}")
        if problems:
            raise ValueError("invalid TrainConfig: " + "; ".join(problems))

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        """Build from a config mapping; unknown keys raise ``ValueError`` naming them (catches typos)."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown training option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return cls(**d)

