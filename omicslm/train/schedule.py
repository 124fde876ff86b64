"""Learning-rate schedule: linear warmup, optional hold, then constant/linear/cosine decay."""

from __future__ import annotations

import math

SCHEDULES = ("constant", "linear", "cosine")


def lr_lambda(step: int, *, warmup_steps: int, total_steps: int, schedule: str = "cosine",
              min_lr_ratio: float = 0.0, hold_steps: int = 0) -> float:
    """Multiplier of the base learning rate at optimizer step ``step`` (for ``LambdaLR``).

    * ``step < warmup_steps``: linear warmup ``step / warmup_steps`` (0 at step 0, 1 at
      the end of warmup); warmup keeps Adam's first updates, made with still-noisy
      second-moment estimates, small.
    * then ``hold_steps`` at 1;
    * then decay from 1 to ``min_lr_ratio`` at ``total_steps``: ``"constant"`` (no
      decay, stays 1), ``"linear"`` or ``"cosine"`` (half cosine);
    * after ``total_steps``: flat at ``min_lr_ratio`` (``"constant"``: 1).

    Parameters
    ----------
    step : int
        Optimizer steps taken so far (0-based).
    warmup_steps, total_steps, hold_steps : int
        Lengths in optimizer steps; ``total_steps`` counts warmup and hold too.
    schedule : str
        One of ``constant``, ``linear``, ``cosine``.
    min_lr_ratio : float
        Final multiplier, in [0, 1].

    Returns
    -------
    float
        The multiplier, in [0, 1].
    """
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {schedule!r}; expected one of {', '.join(SCHEDULES)}")
    if not 0.0 <= min_lr_ratio <= 1.0:
        raise ValueError(f"min_lr_ratio must be in [0, 1], got {min_lr_ratio}")
    if warmup_steps < 0 or hold_steps < 0 or total_steps < 0 or step < 0:
        raise ValueError(f"steps must be >= 0, got step={step} warmup_steps={warmup_steps} "
                         f"hold_steps={hold_steps} total_steps={total_steps}")
    if step < warmup_steps:
        return step / warmup_steps
    if schedule == "constant":
        return 1.0
    decay_start = warmup_steps + hold_steps
    if step < decay_start:
        return 1.0
    decay_steps = total_steps - decay_start
    if decay_steps <= 0:
        return min_lr_ratio
    progress = min(1.0, (step - decay_start) / decay_steps)
    if schedule == "linear":
        shape = 1.0 - progress
    else:
        shape = 0.5 * (1.0 + math.cos(math.pi * progress))
    return min_lr_ratio + (1.0 - min_lr_ratio) * shape
