"""Shared training pieces for every model branch: device/AMP/seeding, lr schedule, checkpoints, the loop."""

from omicslm.train.checkpoint import checkpoint_exists, load_checkpoint, read_checkpoint_config, save_checkpoint
from omicslm.train.device import autocast, pick_device, set_seed
from omicslm.train.loop import TrainConfig, fit, to_device
from omicslm.train.schedule import lr_lambda

__all__ = [
    "TrainConfig", "autocast", "checkpoint_exists", "fit", "load_checkpoint", "lr_lambda", "pick_device",
    "read_checkpoint_config", "save_checkpoint", "set_seed", "to_device",
]
