"""The training job tests/train/test_ddp.py runs in one process and under torchrun (imported by each rank).

The tiny regression task of tests/train/tiny.py without dropout, so one process and two
data-parallel processes must reach the same weights from the same global batches.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from omicslm.train import TrainConfig, fit
from omicslm.train.distributed import is_main_process, world_size
from tests.train.tiny import N_SAMPLES, make_data, make_model, make_task


def train_tiny(out_dir: str, *, train: dict, batch_size: int, fail_at_call: int | None = None) -> dict:
    """Fit the tiny MLP on batches of ``batch_size`` rows; rank 0 writes ``out_dir/result.json``.

    ``result.json``: ``{"world", "state", "weights": {name: nested list}, "rows_seen"}``,
    ``rows_seen`` being the rows this rank's ``loss_fn`` saw (rank 0's).
    """
    x, y = make_data()
    _, loss_fn, validate, _ = make_task(x, y, fail_at_call=fail_at_call)
    rows = [0]

    def train_batches(epoch):
        order = torch.randperm(N_SAMPLES, generator=torch.Generator().manual_seed(100 + epoch))
        return [(x[order[i:i + batch_size]], y[order[i:i + batch_size]]) for i in range(0, N_SAMPLES, batch_size)]

    def counted_loss(model, batch, epoch):
        rows[0] += len(batch[0])
        return loss_fn(model, batch, epoch)

    model = make_model()
    model[2].p = 0.0  # no dropout: its masks depend on which process draws them
    state = fit(model, train_batches, counted_loss, validate, TrainConfig(**train), out_dir, run_config={"tiny": 1})
    if is_main_process():
        weights = {k: v.tolist() for k, v in model.state_dict().items()}
        result = {"world": world_size(), "state": state, "weights": weights, "rows_seen": rows[0]}
        (Path(out_dir) / "result.json").write_text(json.dumps(result))
    return state
