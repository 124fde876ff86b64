import json
import random

import numpy as np
import pytest
import torch

from omicslm.errors import InputError
from omicslm.train import checkpoint as ckpt
from omicslm.train.checkpoint import checkpoint_exists, load_checkpoint, read_checkpoint_config, save_checkpoint
from tests.train.tiny import make_data, make_model


def _trained(steps: int = 3):
    """A model, AdamW and LambdaLR after a few steps, so every state is non-trivial."""
    model = make_model(seed=0)
    opt = torch.optim.AdamW(model.parameters(), lr=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0 / (1 + s))
    x, y = make_data()
    for _ in range(steps):
        torch.nn.functional.mse_loss(model(x), y).backward()
        opt.step()
        sched.step()
        opt.zero_grad()
    return model, opt, sched


def test_round_trip_restores_weights_optimizer_scheduler_and_rng(tmp_path):
    model, opt, sched = _trained()
    state = {"epoch": 2, "global_step": 3, "history": [{"epoch": 0, "val_loss": 0.5}]}
    config = {"model": {"hidden": 16}, "lr": 0.01}
    out = save_checkpoint(tmp_path / "last", model=model, optimizer=opt, scheduler=sched, state=state, config=config)
    assert out == tmp_path / "last"
    expected_draws = (torch.rand(3), random.random(), np.random.rand(2))

    model2, opt2, sched2 = _trained(steps=0)
    loaded = load_checkpoint(out, model=model2, optimizer=opt2, scheduler=sched2)
    assert loaded == state
    for (name, a), b in zip(model.state_dict().items(), model2.state_dict().values()):
        assert torch.equal(a, b), name
    s1, s2 = opt.state_dict(), opt2.state_dict()
    assert s2["param_groups"][0]["lr"] == s1["param_groups"][0]["lr"]
    for k in s1["state"]:
        assert torch.equal(s1["state"][k]["exp_avg"], s2["state"][k]["exp_avg"])
    assert sched2.last_epoch == sched.last_epoch == 3
    # generators continue exactly as they did right after the save
    assert torch.equal(torch.rand(3), expected_draws[0])
    assert random.random() == expected_draws[1]
    assert np.array_equal(np.random.rand(2), expected_draws[2])
    assert read_checkpoint_config(out) == config


def test_files_are_safetensors_and_weights_only_pickles(tmp_path):
    model, opt, sched = _trained()
    out = save_checkpoint(tmp_path / "c", model=model, optimizer=opt, scheduler=sched, state={}, config={})
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["model.safetensors", "optimizer.pt", "rng.pt", "trainer_state.json", "config.json"])
    extra = torch.load(out / "optimizer.pt", weights_only=True)
    assert set(extra) == {"optimizer", "scheduler"}
    rng = torch.load(out / "rng.pt", weights_only=True)
    assert set(rng) >= {"python", "numpy", "torch"}
    from safetensors.torch import load_file
    assert set(load_file(out / "model.safetensors")) == set(model.state_dict())


def test_tied_weights_are_stored_once_and_restored(tmp_path):
    class Tied(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = torch.nn.Embedding(5, 3)
            self.out = torch.nn.Linear(3, 5, bias=False)
            self.out.weight = self.emb.weight

    model = Tied()
    out = save_checkpoint(tmp_path / "t", model=model, state={}, config={})
    from safetensors.torch import load_file
    assert list(load_file(out / "model.safetensors")) == ["emb.weight"]
    model2 = Tied()
    load_checkpoint(out, model=model2)
    assert torch.equal(model2.out.weight, model.emb.weight)
    assert model2.out.weight is model2.emb.weight  # still tied after loading


def test_weights_of_another_size_name_the_tensor_and_both_shapes(tmp_path):
    out = save_checkpoint(tmp_path / "c", model=make_model(hidden=16), state={}, config={})
    with pytest.raises(InputError) as err:
        load_checkpoint(out, model=make_model(hidden=8))
    msg = str(err.value)
    assert "model.safetensors" in msg
    assert "'0.weight'" in msg and "(16, 6)" in msg and "(8, 6)" in msg
    assert "another model config" in msg


def test_missing_and_extra_tensors(tmp_path):
    out = save_checkpoint(tmp_path / "c", model=make_model(), state={}, config={})
    bigger = torch.nn.Sequential(*make_model(), torch.nn.Linear(1, 1))
    with pytest.raises(InputError, match="missing from the checkpoint, first '4.weight'"):
        load_checkpoint(out, model=bigger)
    load_checkpoint(out, model=bigger, strict=False)  # partial load allowed when asked
    assert torch.equal(bigger[0].weight, make_model()[0].weight)


def test_missing_files_are_named(tmp_path):
    out = save_checkpoint(tmp_path / "c", model=make_model(), state={}, config={})
    with pytest.raises(InputError, match="checkpoint directory does not exist"):
        load_checkpoint(tmp_path / "nope", model=make_model())
    # no optimizer.pt in a weights-only checkpoint, but an optimizer was asked for
    with pytest.raises(InputError, match="missing optimizer.pt"):
        load_checkpoint(out, model=make_model(), optimizer=torch.optim.AdamW(make_model().parameters()))
    (out / "trainer_state.json").unlink()
    with pytest.raises(InputError, match=r"c: not a complete checkpoint: missing trainer_state.json"):
        load_checkpoint(out, model=make_model())
    assert not checkpoint_exists(out)


def test_failed_save_leaves_previous_checkpoint_intact(tmp_path, monkeypatch):
    target = tmp_path / "last"
    save_checkpoint(target, model=make_model(seed=0), state={"global_step": 1}, config={"a": 1})

    def broken_save(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(ckpt.torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(target, model=make_model(seed=1), state={"global_step": 2}, config={"a": 1})
    monkeypatch.undo()
    with pytest.raises(TypeError):  # non-JSON state fails before anything is written
        save_checkpoint(target, model=make_model(seed=1), state={"x": object()}, config={"a": 1})
    assert json.loads((target / "trainer_state.json").read_text()) == {"global_step": 1}
    model = make_model(seed=5)
    load_checkpoint(target, model=model)
    assert torch.equal(model[0].weight, make_model(seed=0)[0].weight)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last"]  # no temp dirs left behind


def test_interrupted_swap_is_recovered(tmp_path):
    target = tmp_path / "last"
    save_checkpoint(target, model=make_model(), state={"global_step": 7}, config={})
    # a kill between the two renames leaves only the previous checkpoint under .last.old
    target.rename(tmp_path / ".last.old")
    assert checkpoint_exists(target)
    assert load_checkpoint(target, model=make_model())["global_step"] == 7
    save_checkpoint(target, model=make_model(), state={"global_step": 8}, config={})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last"]


def test_a_save_killed_before_or_after_its_renames_leaves_nothing_after_the_next_save(tmp_path):
    import subprocess
    import sys

    target = tmp_path / "last"
    save_checkpoint(target, model=make_model(), state={"global_step": 1}, config={})
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True).stdout.strip()
    half = tmp_path / f".last.tmp{dead}-x.dir"  # killed while writing its files
    half.mkdir()
    (half / ckpt.WEIGHTS).write_bytes(b"half")
    spent = tmp_path / ".last.old"  # killed after both renames, before removing the previous one
    spent.mkdir()
    assert checkpoint_exists(target) and not spent.exists()
    save_checkpoint(target, model=make_model(), state={"global_step": 2}, config={})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last"]
    assert load_checkpoint(target, model=make_model())["global_step"] == 2
