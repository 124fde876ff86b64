"""Shared training pieces for every model branch: device/AMP/seeding, lr schedule, checkpoints, the loop.

The names below are imported on first use (PEP 562), so importing one torch-free submodule (e.g.
:mod:`omicslm.train.checkpoint_files`) does not import torch.
"""

from importlib import import_module

_WHERE = {
    "TrainConfig": "loop", "autocast": "device", "checkpoint_exists": "checkpoint_files", "fit": "loop",
    "load_checkpoint": "checkpoint", "lr_lambda": "schedule", "pick_device": "device",
    "read_checkpoint_config": "checkpoint_files", "save_checkpoint": "checkpoint", "set_seed": "device",
    "to_device": "loop",
}
__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{_WHERE[name]}"), name)


def __dir__():
    return sorted(set(globals()) | set(_WHERE))
