import json
import os
import signal
import subprocess
import sys
import time
from collections import namedtuple
from pathlib import Path

import pytest
import torch

from omicslm.errors import InputError
from omicslm.train import (TrainConfig, checkpoint_exists, fit, load_checkpoint, lr_lambda, read_checkpoint_config,
                           to_device)
from tests.train.tiny import make_data, make_model, make_task

REPO = Path(__file__).resolve().parents[2]


def _cfg(**kw) -> TrainConfig:
    base = dict(max_epochs=3, lr=0.02, warmup_steps=2, checkpoint_every_steps=3, log_every_steps=2,
                patience=10, device="cpu", seed=0)
    return TrainConfig(**{**base, **kw})


def _weights(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_fit_reduces_loss_and_writes_outputs(tmp_path):
    x, y = make_data()
    train_batches, loss_fn, validate, calls = make_task(x, y)
    cfg = _cfg(max_epochs=4)
    model = make_model()
    state = fit(model, train_batches, loss_fn, validate, cfg, tmp_path, run_config={"hidden": 16})

    hist = state["history"]
    assert [r["epoch"] for r in hist] == [0, 1, 2, 3]
    assert hist[-1]["train_loss"] < 0.5 * hist[0]["train_loss"]
    assert hist[-1]["val_loss"] < hist[0]["val_loss"]
    assert state["global_step"] == 4 * 8 and calls[0] == 4 * 8
    assert state["epochs_run"] == 4 and state["done"] and not state["stopped_early"]
    # lr in the history is the schedule's value after the epoch's last optimizer step
    assert hist[1]["lr"] == pytest.approx(cfg.lr * lr_lambda(16, warmup_steps=2, total_steps=32))

    assert (tmp_path / "last" / "model.safetensors").is_file()
    assert (tmp_path / "best" / "model.safetensors").is_file()
    assert json.loads((tmp_path / "last" / "config.json").read_text()) == {"hidden": 16}
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
    lines = (tmp_path / "history.tsv").read_text().splitlines()
    assert lines[0].split("\t") == ["epoch", "train_loss", "val_loss", "val_r2", "lr", "seconds"]
    assert len(lines) == 1 + 4
    assert float(lines[-1].split("\t")[2]) == pytest.approx(hist[-1]["val_loss"])


def test_schedule_steps_shorter_than_the_run_decays_then_holds(tmp_path):
    x, y = make_data()
    train_batches, loss_fn, validate, _ = make_task(x, y)
    cfg = _cfg(max_epochs=4, min_lr_ratio=0.5, schedule_steps=16)  # 32 optimizer steps in the run
    hist = fit(make_model(), train_batches, loss_fn, validate, cfg, tmp_path, run_config={})["history"]
    assert hist[0]["lr"] == pytest.approx(cfg.lr * lr_lambda(8, warmup_steps=2, total_steps=16, min_lr_ratio=0.5))
    assert hist[0]["lr"] > 0.5 * cfg.lr
    assert [r["lr"] for r in hist[1:]] == pytest.approx([0.5 * cfg.lr] * 3)  # decayed by step 16, then flat
    with pytest.raises(ValueError, match="schedule_steps"):
        _cfg(schedule_steps=0)


def test_early_stopping_keeps_best_epoch_weights(tmp_path):
    x, y = make_data()
    train_batches, loss_fn, _, calls = make_task(x, y)
    scores = [1.0, 0.5, 0.7, 0.8, 0.9, 1.0]   # best at epoch 1, then worse
    per_epoch = {}

    def validate(model, epoch):
        return {"val_loss": scores[epoch]}

    def on_epoch_end(epoch, row):
        per_epoch[epoch] = _weights(model)

    model = make_model()
    state = fit(model, train_batches, loss_fn, validate, _cfg(max_epochs=6, patience=2), tmp_path,
                run_config={}, on_epoch_end=on_epoch_end)
    assert state["stopped_early"] and state["epochs_run"] == 4       # epochs 2 and 3 did not improve
    assert state["best_epoch"] == 1 and state["best_metric"] == 0.5
    assert calls[0] == 4 * 8
    best = make_model(seed=9)
    best_state = load_checkpoint(tmp_path / "best", model=best)
    assert best_state["best_epoch"] == 1
    for k, v in _weights(best).items():
        assert torch.equal(v, per_epoch[1][k]), k
        assert torch.equal(model.state_dict()[k], per_epoch[1][k])   # restore_best: model = best epoch
    assert not torch.equal(per_epoch[1]["0.weight"], per_epoch[3]["0.weight"])


def test_resume_after_interrupt_matches_uninterrupted_run(tmp_path):
    x, y = make_data()
    cfg = _cfg(grad_accum=2)  # 8 batches -> 4 optimizer steps per epoch; checkpoints at steps 3, 4, 6, 8, 9 ...
    ref_model = make_model()
    fit(ref_model, *make_task(x, y)[:3], cfg, tmp_path / "ref", run_config={"a": 1})

    out = tmp_path / "run"
    tb, loss_fn, val, _ = make_task(x, y, fail_at_call=15)   # dies in epoch 1 during global step 7
    with pytest.raises(KeyboardInterrupt):
        fit(make_model(), tb, loss_fn, val, cfg, out, run_config={"a": 1})
    saved = json.loads((out / "last" / "trainer_state.json").read_text())
    assert (saved["epoch"], saved["step_in_epoch"], saved["global_step"]) == (1, 2, 6)

    tb, loss_fn, val, calls = make_task(x, y)
    model = make_model(seed=123)              # different init: everything must come from the checkpoint
    state = fit(model, tb, loss_fn, val, cfg, out, run_config={"a": 1})
    assert calls[0] == 3 * 8 - 6 * 2          # only the batches not yet done
    assert state["global_step"] == 12 and state["epochs_run"] == 3
    ref_hist = json.loads((tmp_path / "ref" / "last" / "trainer_state.json").read_text())["history"]
    for a, b in zip(state["history"], ref_hist):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-6)
        assert a["val_loss"] == pytest.approx(b["val_loss"], rel=1e-6)
    for k, v in ref_model.state_dict().items():
        torch.testing.assert_close(model.state_dict()[k], v, rtol=1e-6, atol=1e-7)


KILLED_SCRIPT = """
import sys
sys.path.insert(0, {repo!r})
from omicslm.train import TrainConfig, fit
from tests.train.tiny import make_data, make_model, make_task
cfg = TrainConfig(**{cfg!r})
x, y = make_data()
tb, loss_fn, val, _ = make_task(x, y, delay=0.02)
fit(make_model(), tb, loss_fn, val, cfg, {out!r}, run_config={{"a": 1}})
"""


def test_resume_after_sigkill_of_a_training_process(tmp_path):
    cfg = _cfg(checkpoint_every_steps=5)
    out = tmp_path / "run"
    script = tmp_path / "train.py"
    cfg_dict = {k: v for k, v in vars(cfg).items()}
    script.write_text(KILLED_SCRIPT.format(repo=str(REPO), cfg=cfg_dict, out=str(out)))
    proc = subprocess.Popen([sys.executable, str(script)], stderr=subprocess.DEVNULL)
    state_file = out / "last" / "trainer_state.json"
    deadline = time.monotonic() + 60
    try:
        while not state_file.is_file():  # first checkpoint: global step 5, in epoch 0
            assert proc.poll() is None, "training process ended before its first checkpoint"
            assert time.monotonic() < deadline, "no checkpoint within 60 s"
            time.sleep(0.01)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert checkpoint_exists(out / "last")  # moves back a checkpoint whose swap the kill interrupted
    saved = json.loads(state_file.read_text())
    assert 0 < saved["global_step"] < 3 * 8 and not saved["done"]

    x, y = make_data()
    tb, loss_fn, val, calls = make_task(x, y)
    model = make_model(seed=7)
    state = fit(model, tb, loss_fn, val, cfg, out, run_config={"a": 1})
    assert calls[0] == 3 * 8 - saved["global_step"]
    assert state["epochs_run"] == 3 and state["global_step"] == 24

    ref = make_model()
    fit(ref, *make_task(x, y)[:3], cfg, tmp_path / "ref", run_config={"a": 1})
    for k, v in ref.state_dict().items():
        torch.testing.assert_close(model.state_dict()[k], v, rtol=1e-5, atol=1e-6)


def test_finished_run_returns_immediately_and_a_config_change_restarts_keeping_the_old_run(tmp_path):
    x, y = make_data()
    tb, loss_fn, val, _ = make_task(x, y)
    run_config = {"model": {"hidden": 16}, "train": {"lr": 0.02}, "seed": 0}
    first = fit(make_model(), tb, loss_fn, val, _cfg(max_epochs=2), tmp_path, run_config=run_config)

    tb, loss_fn, val, calls = make_task(x, y, fail_at_call=1)  # any training would raise
    again = fit(make_model(seed=3), tb, loss_fn, val, _cfg(max_epochs=2), tmp_path, run_config=run_config)
    assert calls[0] == 0 and again["history"] == first["history"]

    changed = {**run_config, "model": {"hidden": 32}, "seed": 1}
    with pytest.raises(InputError) as err:
        fit(make_model(), tb, loss_fn, val, _cfg(max_epochs=2), tmp_path, run_config=changed, on_config_change="error")
    msg = str(err.value)
    assert "config.json" in msg and "another config" in msg
    assert "model, seed" in msg and f"remove {tmp_path}" in msg

    # the workflow's case: a parameter changed, Snakemake reruns the step -> train anew, old run set aside
    tb, loss_fn, val, calls = make_task(x, y)
    third = fit(make_model(), tb, loss_fn, val, _cfg(max_epochs=2), tmp_path, run_config=changed)
    assert calls[0] > 0 and third["epochs_run"] == 2
    assert read_checkpoint_config(tmp_path / "last") == changed
    assert read_checkpoint_config(tmp_path / "previous_config" / "last") == run_config
    assert (tmp_path / "previous_config" / "history.tsv").read_text().count("\n") == 3


def test_missing_early_stopping_metric_is_named(tmp_path):
    x, y = make_data()
    tb, loss_fn, _, _ = make_task(x, y)
    with pytest.raises(KeyError, match="early_stopping_metric is 'val_auc'"):
        fit(make_model(), tb, loss_fn, lambda m, e: {"val_loss": 1.0}, _cfg(early_stopping_metric="val_auc"),
            tmp_path, run_config={})


def test_train_config_from_dict():
    cfg = TrainConfig.from_dict({"lr": 0.1, "betas": [0.9, 0.95], "schedule": "linear"})
    assert cfg.lr == 0.1 and cfg.betas == (0.9, 0.95) and cfg.schedule == "linear"
    with pytest.raises(ValueError, match="unknown training option.*learning_rate, max_epoch"):
        TrainConfig.from_dict({"learning_rate": 0.1, "max_epoch": 3})
    with pytest.raises(ValueError, match="early_stopping_mode 'best'"):
        TrainConfig.from_dict({"early_stopping_mode": "best"})


def test_to_device_keeps_container_types():
    Pair = namedtuple("Pair", "a b")
    batch = {"x": torch.ones(2), "meta": ["s1", 3], "pair": Pair(torch.zeros(1), (torch.ones(1), "k"))}
    moved = to_device(batch, "cpu")
    assert isinstance(moved["pair"], Pair) and moved["pair"].b[1] == "k"
    assert moved["meta"] == ["s1", 3] and torch.equal(moved["x"], torch.ones(2))


@pytest.mark.parametrize("garble", ["model.safetensors", "optimizer.pt", "rng.pt", "trainer_state.json",
                                    "config.json"])
def test_a_corrupt_checkpoint_file_is_quarantined_and_training_starts_over(tmp_path, garble):
    x, y = make_data()
    cfg = _cfg(max_epochs=2)
    ref = fit(make_model(), *make_task(x, y)[:3], cfg, tmp_path / "ref", run_config={"a": 1})
    out = tmp_path / "run"
    tb, loss_fn, val, _ = make_task(x, y, fail_at_call=11)   # killed in epoch 1: last/ holds a mid-run checkpoint
    with pytest.raises(KeyboardInterrupt):
        fit(make_model(), tb, loss_fn, val, cfg, out, run_config={"a": 1})
    path = out / "last" / garble
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 3] + b"\x00garbage")
    tb, loss_fn, val, calls = make_task(x, y)
    state = fit(make_model(), tb, loss_fn, val, cfg, out, run_config={"a": 1})
    assert calls[0] == 2 * 8  # started over: every batch of both epochs
    kept = list((out / "quarantine").iterdir())
    assert len(kept) == 1 and kept[0].name.startswith("last-") and (kept[0] / garble).is_file()
    assert checkpoint_exists(out / "last") and state["done"]
    for a, b in zip(state["history"], ref["history"]):  # the same run as one never interrupted
        assert a["val_loss"] == pytest.approx(b["val_loss"], rel=1e-6)
