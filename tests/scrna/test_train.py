import json
import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from omicslm.scrna.tokenize import load_tokenized
from omicslm.scrna.train import eval_mask, mask_rows, train_model
from omicslm.train import TrainConfig, lr_lambda

ROOT = Path(__file__).resolve().parents[2]
MODEL = {"d_model": 16, "heads": 2, "ffn": 32, "layers": 1, "dropout": 0.0, "norm_first": True, "proj_dim": 8}
LOSS = {"head": "ce", "mask_fraction": 0.2, "clip_weight": 0.1, "clip_temperature": 0.1}
TRAIN = {"max_epochs": 2, "lr": 3e-3, "warmup_steps": 2, "min_lr_ratio": 0.1, "patience": 5,
         "checkpoint_every_steps": 1, "log_every_steps": 1, "device": "cpu"}


def _train(tokens, tmp_path, **kw):
    opts = dict(model=MODEL, loss=LOSS, train=TRAIN, batch_size=4, steps_per_epoch=5, max_val_cells=None,
                eval_mask_fraction=0.2, eval_seed=1)
    opts.update(kw)
    return train_model(tokens, tmp_path / "model", work_dir=tmp_path / "work", name="tiny", **opts)


def test_the_seeds_lr_schedule_from_config_full():
    cfg = yaml.safe_load((ROOT / "config" / "full.yaml").read_text())["scrna"]
    tcfg = TrainConfig.from_dict({**yaml.safe_load((ROOT / "config.yaml").read_text())["scrna"]["train"],
                                  **cfg["train"]})
    total = tcfg.max_epochs * math.ceil(cfg["steps_per_epoch"] / tcfg.grad_accum)
    assert total > tcfg.schedule_steps == 10_000 and tcfg.grad_accum == 8 and cfg["batch_size"] == 16

    def lr(step):  # as omicslm.train.loop.fit builds it: the schedule spans schedule_steps, not the run
        return tcfg.lr * lr_lambda(step, warmup_steps=tcfg.warmup_steps, total_steps=tcfg.schedule_steps,
                                   schedule=tcfg.schedule, min_lr_ratio=tcfg.min_lr_ratio)

    # warmup 1000 steps to 1e-3, cosine to 5e-4 at step 10,000, then flat
    for step, want in ((0, 0.0), (500, 5e-4), (1000, 1e-3), (5500, 7.5e-4), (10_000, 5e-4), (15_000, 5e-4)):
        assert lr(step) == pytest.approx(want, rel=1e-9, abs=1e-12), step


def test_masks_cover_the_fraction_of_real_tokens_and_never_padding():
    rng = np.random.default_rng(0)
    genes = np.array([[3, 4, 5, 6, 7, 8, 9, 10, 0, 0], [1, 2, 0, 0, 0, 0, 0, 0, 0, 0], [0] * 10])
    m = mask_rows(genes, 0.25, rng)
    assert m.sum(1).tolist() == [2, 1, 0] and not m[genes == 0].any()


def test_evaluation_masks_do_not_depend_on_the_subset(tokens):
    data = load_tokenized(tokens)
    rows = data.rows("test")
    full = eval_mask(data, rows, fraction=0.2, seed=3)
    np.testing.assert_array_equal(eval_mask(data, rows[2:5], fraction=0.2, seed=3), full[2:5])
    assert not np.array_equal(eval_mask(data, rows, fraction=0.2, seed=4), full)


def test_training_learns_and_writes_its_outputs(tokens, tmp_path):
    state = _train(tokens, tmp_path, train={**TRAIN, "max_epochs": 3})
    history = state["history"]
    assert len(history) == 3 and history[-1]["val_loss"] < math.log(10)
    # the lr follows warmup + cosine over the run's 15 optimizer steps
    want = [3e-3 * lr_lambda(5 * (e + 1), warmup_steps=2, total_steps=15, min_lr_ratio=0.1) for e in range(3)]
    assert [h["lr"] for h in history] == pytest.approx(want)
    summary = json.loads((tmp_path / "model" / "train_summary.json").read_text())
    assert summary["optimizer_steps"] == 15 and (tmp_path / "model" / "best" / "model.safetensors").is_file()
    assert (tmp_path / "work" / "tensorboard").is_dir()
    assert (tmp_path / "model" / "history.tsv").read_text().startswith("epoch\ttrain_loss\tval_loss")


def test_killed_training_resumes_from_last_checkpoint(tokens, tmp_path):
    calls = []

    def crash_after_three(epoch):
        calls.append(epoch)
        if len(calls) == 4:  # batches 1..3 stepped and checkpointed (checkpoint_every_steps=1)
            raise KeyboardInterrupt("simulated kill")

    with pytest.raises(KeyboardInterrupt):
        _train(tokens, tmp_path, loss_hook=crash_after_three)
    assert (tmp_path / "work" / "last").is_dir() and not (tmp_path / "model" / "best").exists()
    resumed = []
    state = _train(tokens, tmp_path, loss_hook=resumed.append)
    assert state["global_step"] == 10 and len(resumed) == 10 - 3 and resumed[0] == 0
    # a finished run is not trained again
    again = []
    _train(tokens, tmp_path, loss_hook=again.append)
    assert again == []
    # ... but a longer one is trained, from the start (the LR schedule spans the new length), not taken as done
    longer = []
    state = _train(tokens, tmp_path, train={**TRAIN, "max_epochs": 3}, loss_hook=longer.append)
    assert state["global_step"] == 15 and len(longer) == 15 and len(state["history"]) == 3
    assert (tmp_path / "work" / "previous_config").is_dir()


def test_the_same_seed_trains_the_same_model(tokens, tmp_path):
    import torch

    torch.manual_seed(123)  # whatever state the process is in, train.seed decides the initial weights
    a = _train(tokens, tmp_path / "a", train={**TRAIN, "max_epochs": 1})
    torch.manual_seed(456)
    b = _train(tokens, tmp_path / "b", train={**TRAIN, "max_epochs": 1})
    assert a["history"][0]["val_loss"] == b["history"][0]["val_loss"]
