"""Device choice, mixed precision and seeding shared by every model branch.

One place decides what "auto" means, when bf16 autocast is on and how the random
generators are seeded, so every branch trains the same way on a laptop CPU and on a
CUDA GPU.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

log = logging.getLogger(__name__)

DEVICE_CHOICES = ("auto", "cpu", "cuda")


def pick_device(prefer: str = "auto") -> torch.device:
    """Return the device to train on.

    Parameters
    ----------
    prefer : str
        ``"auto"`` (CUDA when available, else CPU), ``"cpu"``, ``"cuda"`` or an
        indexed CUDA device such as ``"cuda:1"``. Under torchrun, ``"auto"`` and
        ``"cuda"`` mean this process's own GPU, ``cuda:LOCAL_RANK``.

    Raises
    ------
    ValueError
        For an unknown name, or ``"cuda"`` on a machine without a usable GPU (asking
        for a GPU and silently getting a CPU would turn a 1 h job into a 3 day one).
    """
    name = str(prefer).strip().lower()
    if name == "auto":
        return _cuda() if torch.cuda.is_available() else torch.device("cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise ValueError(f"device {prefer!r} requested but torch {torch.__version__} sees no CUDA GPU; "
                             f"use device: auto or cpu")
        return _cuda() if name == "cuda" else torch.device(name)
    raise ValueError(f"unknown device {prefer!r}; expected one of {', '.join(DEVICE_CHOICES)} (or cuda:N)")


def _cuda() -> torch.device:
    # torchrun gives each process on a node its own LOCAL_RANK; one GPU per process
    local = os.environ.get("LOCAL_RANK")
    return torch.device("cuda") if local is None else torch.device("cuda", int(local))


def autocast(device: torch.device, enabled: bool):
    """Context manager: bf16 autocast on CUDA when ``enabled``, otherwise a no-op.

    bf16 keeps the fp32 exponent range, so unlike fp16 it needs no loss scaling
    (no ``GradScaler``). On CPU autocast is slower than fp32 for small models, so it
    is never used there.
    """
    device = torch.device(device)
    if enabled and device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 matrix products natively (AVX512-BF16 or AMX-BF16 in /proc/cpuinfo)."""
    try:
        flags = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def inference_autocast(device: torch.device, *, amp: bool, cpu_bf16: bool):
    """Autocast for inference without gradient: bf16 on CUDA when ``amp``; on CPU bf16 when ``cpu_bf16`` and the
    CPU has native bf16 (:func:`cpu_has_native_bf16`; elsewhere emulated bf16 is slower than fp32, so fp32 with a
    warning), else fp32."""
    device = torch.device(device)
    if device.type == "cuda":
        return autocast(device, amp)
    if cpu_bf16:
        if cpu_has_native_bf16():
            return torch.autocast(device_type="cpu", dtype=torch.bfloat16)
        log.warning("cpu_bf16 asked for, but this CPU has no native bf16 (avx512_bf16/amx_bf16): inference in fp32")
    return contextlib.nullcontext()


def set_seed(seed: int, deterministic: bool = True) -> None:
    """Seed python, numpy and torch (all CUDA devices) generators.

    On a CPU-only machine and ``deterministic``, torch is asked for deterministic
    kernels (``warn_only=True``: an op without one warns instead of failing), so a
    resumed run reproduces an uninterrupted one bit for bit. On CUDA, speed wins:
    TF32 matmuls/convolutions are enabled (about 8x the fp32 throughput on Ampere+,
    with a 10-bit mantissa that is ample for training) and cuDNN autotuning is left
    off only when ``deterministic``.
    """
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device
    if torch.cuda.is_available():
        with warnings.catch_warnings():
            # newer torch suggests the fp32_precision API; the legacy flags still work
            warnings.simplefilter("ignore")
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.deterministic = deterministic
        torch.backends.cudnn.benchmark = not deterministic
    elif deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)


def to_device(batch: Any, device: torch.device | str, non_blocking: bool = True) -> Any:
    """Move every tensor in a (nested) dict / list / tuple / namedtuple to ``device``; other values pass through."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=non_blocking)
    if isinstance(batch, dict):
        return type(batch)((k, to_device(v, device, non_blocking)) for k, v in batch.items())
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):
        return type(batch)(*(to_device(v, device, non_blocking) for v in batch))
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(v, device, non_blocking) for v in batch)
    return batch
