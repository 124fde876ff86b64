"""The resolved config a training run stores in its checkpoints, and what happens when it changes.

A run's ``config.json`` (beside every checkpoint) is compared with the live config before
resuming: only a checkpoint of the same run may be resumed. When the config changed (the
workflow reruns a training step because a parameter changed), the old run is either
refused with the keys that differ, or set aside in ``previous_config/`` so that training
starts over and nothing is deleted but an older set-aside copy.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

from omicslm.errors import InputError
from omicslm.train.checkpoint import read_checkpoint_config

log = logging.getLogger(__name__)


def jsonable(obj: Any) -> Any:
    """The config as it reads back from JSON (tuples -> lists), so a saved and a live one compare equal."""
    return json.loads(json.dumps(obj, default=str))


def differing_keys(saved: dict, run_config: dict) -> list[str]:
    """Top-level keys whose values differ between two run configs (absent counts as a value)."""
    return sorted(k for k in set(saved) | set(run_config) if saved.get(k, "<absent>") != run_config.get(k, "<absent>"))


def check_run_config(last_dir: Path, run_config: dict) -> None:
    """Raise ``InputError`` naming the differing keys unless ``last_dir`` was made with ``run_config``."""
    saved = read_checkpoint_config(last_dir)
    if saved == run_config:
        return
    keys = differing_keys(saved, run_config)
    raise InputError(last_dir / "config.json",
                     f"the checkpoint in {last_dir} was made with another config (top-level keys that differ: "
                     f"{', '.join(keys)}); remove {last_dir.parent} to restart training with the new config, "
                     f"or restore the old config to resume")


def set_aside_previous_run(out_dir: Path, saved: dict | None, run_config: dict,
                           names=("last", "best", "history.tsv", "tensorboard")) -> None:
    """Move a run made with another config to ``out_dir/previous_config`` (nothing is deleted but an older copy).

    ``names``: the run's entries in ``out_dir`` (those that exist are moved); ``saved`` None = a run
    that recorded no config.
    """
    keys = differing_keys(saved, run_config) if saved is not None else ["<not recorded>"]
    aside = out_dir / "previous_config"
    if aside.exists():
        shutil.rmtree(aside)
    aside.mkdir(parents=True)
    for name in names:
        if (out_dir / name).exists():
            (out_dir / name).rename(aside / name)
    log.warning("%s holds a run made with another config (keys that differ: %s): training starts over; "
                "the previous run is kept in %s", out_dir, ", ".join(keys), aside)
