"""Checkpoints that a killed job can resume from and that rebuild their model alone.

A checkpoint is a directory::

    model.safetensors    model weights (tied/shared tensors stored once, see ``aliases`` metadata)
    optimizer.pt         {"optimizer", "scheduler", "scaler"} state dicts (only when given)
    rng.pt               python / numpy / torch (+ CUDA) generator states, for exact resume
    trainer_state.json   the trainer's ``state`` (epoch, global_step, best_metric, history, ...)
    config.json          the resolved run config, so the checkpoint can rebuild its model

Everything is loaded with ``torch.load(..., weights_only=True)`` or safetensors, so
opening a checkpoint never unpickles (and so never runs) arbitrary code.

:func:`save_checkpoint` writes into a temporary directory beside the target and swaps
it in with two ``os.replace`` calls; a crash between them leaves the previous
checkpoint as ``.<name>.old``, which :func:`checkpoint_exists` / :func:`load_checkpoint`
move back. So a failed or killed save never leaves a half-written checkpoint.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from omicslm.errors import InputError
from omicslm.io.atomic import sweep_stale, temp_prefix
from omicslm.train.checkpoint_files import (ALIASES_KEY, CONFIG, OPTIMIZER, REQUIRED, RNG, STATE,  # noqa: F401
                                         WEIGHTS, _old_dir, _read_json, _recover, _require, checkpoint_exists,
                                         read_checkpoint_config)


def _unwrap(model: torch.nn.Module) -> torch.nn.Module:
    # torch.compile wraps the module; save/load the original so keys have no "_orig_mod." prefix
    return getattr(model, "_orig_mod", model)


def _fsync(path: Path) -> None:
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


def _split_shared(state_dict: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Store each tensor once: identical views (tied weights) become aliases; other overlaps are copied.

    safetensors refuses tensors that share memory, so tied weights (e.g. an output
    projection tied to the embedding) are saved under their first name and recorded
    as aliases, which :func:`load_checkpoint` expands again.
    """
    tensors: dict[str, torch.Tensor] = {}
    aliases: dict[str, str] = {}
    seen_views: dict[tuple, str] = {}
    seen_storage: set[int] = set()
    for name, t in state_dict.items():
        t = t.detach()
        if t.device.type == "meta":
            raise ValueError(f"tensor {name!r} is on the meta device and has no data to save")
        ptr = t.untyped_storage().data_ptr() if t.numel() else None
        view = (ptr, t.storage_offset(), tuple(t.shape), tuple(t.stride()), t.dtype)
        if ptr is not None and view in seen_views:
            aliases[name] = seen_views[view]
            continue
        if ptr is not None:
            seen_views[view] = name
            shares = ptr in seen_storage
            seen_storage.add(ptr)
        else:
            shares = False
        t = t.to("cpu")
        # a partial overlap with an earlier tensor (or a non-contiguous view) needs its own copy
        tensors[name] = t.clone() if shares else t.contiguous()
    return tensors, aliases


def _rng_state() -> dict:
    np_state = np.random.get_state()
    state = {
        "python": random.getstate(),
        # numpy's key array is stored as a tensor: weights_only loading refuses numpy objects
        "numpy": (np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), int(np_state[2]),
                  int(np_state[3]), float(np_state[4])),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(dir: str | os.PathLike, *, model: torch.nn.Module, optimizer=None, scheduler=None, scaler=None,
                    state: dict, config: dict) -> Path:
    """Write a checkpoint directory atomically (replacing an existing one).

    Parameters
    ----------
    dir : path
        Checkpoint directory, e.g. ``out/last``; its parent is created.
    model : torch.nn.Module
        Weights = ``model.state_dict()`` (parameters and persistent buffers).
    optimizer, scheduler, scaler : optional
        Objects with ``state_dict()``; saved together in ``optimizer.pt`` when any is given.
    state : dict
        JSON-serialisable trainer state, written to ``trainer_state.json``.
    config : dict
        JSON-serialisable resolved run config, written to ``config.json``.

    Returns
    -------
    Path
        ``dir``.
    """
    path = Path(dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    _recover(path)
    # serialise the JSON first: a non-serialisable value fails before anything is written
    state_text = json.dumps(state, indent=1, sort_keys=False)
    config_text = json.dumps(config, indent=1, sort_keys=True)
    sweep_stale(path)  # a save killed before its renames left its folder behind
    tmp = Path(tempfile.mkdtemp(prefix=temp_prefix(path), suffix=".dir", dir=path.parent))
    try:
        tensors, aliases = _split_shared(_unwrap(model).state_dict())
        save_file(tensors, tmp / WEIGHTS, metadata={ALIASES_KEY: json.dumps(aliases), "format": "pt"})
        extra = {key: obj.state_dict() for key, obj in
                 (("optimizer", optimizer), ("scheduler", scheduler), ("scaler", scaler)) if obj is not None}
        if extra:
            torch.save(extra, tmp / OPTIMIZER)
        torch.save(_rng_state(), tmp / RNG)
        (tmp / STATE).write_text(state_text + "\n")
        (tmp / CONFIG).write_text(config_text + "\n")
        for f in tmp.iterdir():
            _fsync(f)
        old = _old_dir(path)
        if path.exists():
            if old.exists():
                shutil.rmtree(old)
            os.replace(path, old)
        os.replace(tmp, path)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def _load_weights(path: Path, device: str) -> dict[str, torch.Tensor]:
    file = path / WEIGHTS
    try:
        tensors = load_file(file, device=device)
        with safe_open(file, framework="pt") as fh:
            metadata = fh.metadata() or {}
    except (SafetensorError, OSError) as exc:
        raise InputError(file, f"cannot read model weights ({exc})") from None
    for alias, stored in json.loads(metadata.get(ALIASES_KEY, "{}")).items():
        tensors[alias] = tensors[stored]
    return tensors


def _check_fits(file: Path, model: torch.nn.Module, tensors: dict[str, torch.Tensor], strict: bool) -> None:
    """Raise InputError naming the first tensor whose name or shape does not fit the model."""
    hint = "the checkpoint was probably made with another model config (see its config.json)"
    expected = model.state_dict()
    for name, t in expected.items():
        if name in tensors and tuple(tensors[name].shape) != tuple(t.shape):
            raise InputError(file, f"tensor {name!r} has shape {tuple(tensors[name].shape)} in the checkpoint "
                                   f"but {tuple(t.shape)} in the model; {hint}")
    if strict:
        missing = [n for n in expected if n not in tensors]
        unexpected = [n for n in tensors if n not in expected]
        if missing:
            raise InputError(file, f"{len(missing)} model tensor(s) missing from the checkpoint, first "
                                   f"{missing[0]!r} with shape {tuple(expected[missing[0]].shape)}; {hint}")
        if unexpected:
            raise InputError(file, f"{len(unexpected)} checkpoint tensor(s) unknown to the model, first "
                                   f"{unexpected[0]!r} with shape {tuple(tensors[unexpected[0]].shape)}; {hint}")


def load_checkpoint(dir: str | os.PathLike, *, model: torch.nn.Module, optimizer=None, scheduler=None, scaler=None,
                    map_location="cpu", strict: bool = True, restore_rng: bool = True) -> dict:
    """Restore a checkpoint written by :func:`save_checkpoint` into existing objects.

    Parameters
    ----------
    dir : path
        Checkpoint directory.
    model : torch.nn.Module
        Receives the weights (in place, on whatever device it is on).
    optimizer, scheduler, scaler : optional
        Receive their saved state; the checkpoint must then hold ``optimizer.pt``.
    map_location : str or torch.device
        Where tensors are loaded before being copied into the objects.
    strict : bool
        Also fail on tensors that are missing from, or unknown to, the model.
    restore_rng : bool
        Restore python / numpy / torch generator states (needed for an exact resume).

    Returns
    -------
    dict
        The trainer state (``trainer_state.json``).

    Raises
    ------
    InputError
        When files are missing or unreadable, or the weights do not fit the model
        (naming the first mismatching tensor and both shapes).
    """
    path = Path(dir)
    _recover(path)
    _require(path, REQUIRED)
    state = _read_json(path / STATE)
    model = _unwrap(model)
    tensors = _load_weights(path, str(map_location))
    _check_fits(path / WEIGHTS, model, tensors, strict)
    model.load_state_dict(tensors, strict=strict)
    wanted = {key: obj for key, obj in (("optimizer", optimizer), ("scheduler", scheduler), ("scaler", scaler))
              if obj is not None}
    if wanted:
        _require(path, (OPTIMIZER,))
        try:
            extra = torch.load(path / OPTIMIZER, map_location=map_location, weights_only=True)
        except Exception as exc:  # an unpickling error names the refused global; report it as bad input
            raise InputError(path / OPTIMIZER, f"cannot load optimizer state with weights_only=True ({exc})") from None
        for key, obj in wanted.items():
            if key not in extra:
                raise InputError(path / OPTIMIZER, f"checkpoint holds no {key} state (has {', '.join(extra) or 'none'})")
            try:
                obj.load_state_dict(extra[key])
            except (ValueError, KeyError) as exc:
                raise InputError(path / OPTIMIZER, f"{key} state does not fit ({exc})") from None
    if restore_rng and (path / RNG).is_file():
        try:
            _set_rng_state(torch.load(path / RNG, map_location="cpu", weights_only=True))
        except Exception as exc:  # truncated zip, refused global, a state of the wrong shape
            raise InputError(path / RNG, f"cannot restore the generator states ({exc})") from None
    return state
