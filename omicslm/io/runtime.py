"""The ``runtime.json`` record every method's step writes, and the evaluation tables read.

A runtime record is one JSON object whose first keys are always

``method`` (str)
    The method's name: the CRISPR table names its row by it; the imputation evaluator warns
    when it is not the method it scores.
``seconds`` (float)
    Wall-clock seconds of the step that made the method's predictions: the runtime
    column of ``omicslm.impute.evaluate`` and ``omicslm.crispr.evaluate``.
``threads`` (int)
    CPU threads the step was given.

followed by the keys a branch adds (``device``, ``train_seconds``, ``trainable_params``, ...),
which no table depends on.

It lives in :mod:`omicslm.io`, not :mod:`omicslm.train`, because steps that train nothing write
one too (Beagle, Minimac4, the AF floor, the CRISPR stack) and ``omicslm.train`` imports torch.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from omicslm.io.atomic import atomic_open


def write_json(path: str | os.PathLike, record: dict[str, Any]) -> Path:
    """Write ``record`` as an indented JSON object atomically (temporary file, then rename); return ``path``."""
    with atomic_open(path) as fh:
        json.dump(record, fh, indent=2)
        fh.write("\n")
    return Path(path)


def write_runtime(path: str | os.PathLike, *, method: str, seconds: float, threads: int, **extra: Any) -> Path:
    """Write a runtime record ``{"method", "seconds", "threads", **extra}`` atomically; return ``path``.

    ``seconds`` is stored as a float and ``threads`` as an int (numpy scalars included);
    ``extra`` values must be JSON-serialisable.
    """
    return write_json(path, {"method": method, "seconds": float(seconds), "threads": int(threads), **extra})
