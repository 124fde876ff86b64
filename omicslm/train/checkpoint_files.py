"""A checkpoint directory's files without torch: their names, recovering an interrupted save, and reading
``config.json`` (:mod:`omicslm.train.checkpoint` writes and loads the weights).

Reading a checkpoint's config is what a run without a network (the copying model alone) needs: it starts
without torch's import (about 2 s).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

from omicslm.errors import InputError

log = logging.getLogger(__name__)

WEIGHTS = "model.safetensors"
OPTIMIZER = "optimizer.pt"
RNG = "rng.pt"
STATE = "trainer_state.json"
CONFIG = "config.json"
REQUIRED = (WEIGHTS, STATE, CONFIG)
ALIASES_KEY = "aliases"  # safetensors metadata: JSON {dropped name: stored name} for tied tensors


def _old_dir(path: Path) -> Path:
    return path.parent / f".{path.name}.old"


def _recover(path: Path) -> None:
    """Move back the previous checkpoint when a save died between its two renames."""
    old = _old_dir(path)
    if not path.exists() and old.is_dir():
        log.warning("%s is missing but %s exists (a save was interrupted); restoring it", path, old)
        os.replace(old, path)
    elif old.is_dir() and all((path / name).is_file() for name in REQUIRED):
        shutil.rmtree(old, ignore_errors=True)  # killed after both renames: the previous one is spent


def checkpoint_exists(path: str | os.PathLike) -> bool:
    """True when ``path`` holds a complete checkpoint (after recovering an interrupted swap)."""
    path = Path(path)
    _recover(path)
    return all((path / name).is_file() for name in REQUIRED)


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(path, "checkpoint file is missing; the directory is not a complete checkpoint") from None
    except json.JSONDecodeError as exc:
        raise InputError(path, f"checkpoint file is not valid JSON ({exc})") from None


def _require(path: Path, names) -> None:
    if not path.is_dir():
        raise InputError(path, "checkpoint directory does not exist")
    missing = [n for n in names if not (path / n).is_file()]
    if missing:
        raise InputError(path, f"not a complete checkpoint: missing {', '.join(missing)}")


def read_checkpoint_config(dir: str | os.PathLike) -> dict:
    """Return the resolved run config stored with a checkpoint (``config.json``)."""
    path = Path(dir)
    _recover(path)
    _require(path, (CONFIG,))
    return _read_json(path / CONFIG)
