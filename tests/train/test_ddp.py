"""Data-parallel training: 2 gloo processes under torchrun reach the weights of one process with the same global batch.

The two-process runs go through omicslm.train.launch.call, the path a training rule with
``resources: gpu: 2`` takes (torchrun --standalone --nproc-per-node 2), on CPU.
"""

import json
from collections import namedtuple
from pathlib import Path

import numpy as np
import pytest
import torch

from omicslm.train import launch
from omicslm.train.distributed import shard_rows
from tests.train.ddp_job import train_tiny
from tests.train.tiny import make_model

REPO_ROOT = Path(__file__).resolve().parents[2]
TARGET = "tests.train.ddp_job:train_tiny"
# batches of 13 rows (9 x 13 + 11): the ranks get 6 / 7 and 5 / 6 rows, so the loss weighting is exercised
BATCH = 13
TRAIN = dict(max_epochs=2, lr=0.02, warmup_steps=2, checkpoint_every_steps=3, log_every_steps=2, patience=10,
             device="cpu", seed=0, grad_accum=2)


@pytest.fixture(autouse=True)
def _importable(monkeypatch):
    # the torchrun processes import tests.train.ddp_job from this checkout
    monkeypatch.setenv("PYTHONPATH", str(REPO_ROOT))
    monkeypatch.delenv("WORLD_SIZE", raising=False)


def _result(out):
    return json.loads((out / "result.json").read_text())


def _max_abs_diff(a: dict, b: dict) -> float:
    return max(float(np.max(np.abs(np.array(a[k]) - np.array(b[k])))) for k in a)


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    out = tmp_path_factory.mktemp("single")
    train_tiny(str(out), train=TRAIN, batch_size=BATCH)
    return _result(out)


def test_two_gloo_processes_match_one_process(tmp_path, single):
    out = tmp_path / "ddp"
    assert launch.call(TARGET, str(out), nproc=2, train=TRAIN, batch_size=BATCH) is None
    ddp = _result(out)
    assert ddp["world"] == 2 and single["world"] == 1
    # rank 0 saw its half of each global batch: 6 of 13 rows (9 batches) and 5 of the last 11, per epoch
    assert ddp["rows_seen"] == 2 * (9 * 6 + 5) and single["rows_seen"] == 2 * 128
    assert ddp["state"]["global_step"] == single["state"]["global_step"] == 2 * 5
    diff = _max_abs_diff(ddp["weights"], single["weights"])
    print(f"max abs weight difference, 2 gloo processes vs 1 process: {diff:.3g}")
    assert diff < 1e-5
    moved = _max_abs_diff(single["weights"], {k: v.tolist() for k, v in make_model().state_dict().items()})
    assert moved > 1e-2  # training did change the weights
    for a, b in zip(ddp["state"]["history"], single["state"]["history"], strict=True):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-5)
        assert a["val_loss"] == pytest.approx(b["val_loss"], rel=1e-5)
    # rank 0 alone wrote the run's files: one TensorBoard event file, one history row per epoch
    assert len(list((out / "tensorboard").glob("events.out.tfevents.*"))) == 1
    assert len((out / "history.tsv").read_text().splitlines()) == 1 + 2
    assert not list(out.glob(".*tmp*"))


def test_killed_two_process_run_resumes_to_the_same_weights(tmp_path, single):
    out = tmp_path / "ddp"
    # each rank dies on its 13th loss call (epoch 1, 3rd batch); the last checkpoint is global step 6
    with pytest.raises(RuntimeError, match="torchrun of tests.train.ddp_job:train_tiny on 2 processes exited"):
        launch.call(TARGET, str(out), nproc=2, train=TRAIN, batch_size=BATCH, fail_at_call=13)
    saved = json.loads((out / "last" / "trainer_state.json").read_text())
    assert (saved["epoch"], saved["global_step"]) == (1, 6)
    launch.call(TARGET, str(out), nproc=2, train=TRAIN, batch_size=BATCH)
    ddp = _result(out)
    assert ddp["rows_seen"] == 7 * 6 + 5  # only epoch 1's batches after the checkpoint (3rd to 10th)
    diff = _max_abs_diff(ddp["weights"], single["weights"])
    print(f"max abs weight difference, resumed 2-process run vs 1 process: {diff:.3g}")
    assert diff < 1e-5


def test_shard_rows_splits_every_row_tensor_and_keeps_the_rest():
    Pair = namedtuple("Pair", "a b")
    batch = {"x": torch.arange(10).reshape(5, 2), "y": Pair(torch.arange(5), "name"), "k": torch.tensor(3.0),
             "other": torch.zeros(4)}
    parts = [shard_rows(batch, r, 2) for r in range(2)]
    assert [share for _, share in parts] == [2 / 5, 3 / 5]
    assert torch.equal(torch.cat([p["x"] for p, _ in parts]), batch["x"])
    assert parts[1][0]["y"].a.tolist() == [2, 3, 4] and parts[1][0]["y"].b == "name"
    assert parts[0][0]["k"] is batch["k"] and parts[0][0]["other"] is batch["other"]  # not of the batch's rows


def test_shard_rows_keeps_groups_together_and_feeds_ranks_without_rows():
    rows = torch.arange(6)
    shards = [shard_rows(rows, r, 4, multiple=2) for r in range(4)]  # 3 pairs over 4 ranks
    got = [(s.tolist(), share) for s, share in shards]
    assert got == [([0, 1], 0.0), ([0, 1], 2 / 6), ([2, 3], 2 / 6), ([4, 5], 2 / 6)]
    assert sum(share for _, share in got) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="no tensor"):
        shard_rows({"name": "x"}, 0, 2)


def test_call_runs_in_process_for_one_gpu_and_builds_torchrun_for_more(tmp_path):
    assert launch.call("os.path:join", "a", "b", nproc=1) == "a/b"
    assert launch.call("os.path:join", "a", "b", nproc=0) == "a/b"
    cmd = launch.torchrun_command(4, tmp_path / "call.json")
    assert cmd[1:7] == ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "4", "-m"]
    assert cmd[-2:] == ["omicslm.train.launch", str(tmp_path / "call.json")]
    with pytest.raises(ValueError, match="not 'package.module:function'"):
        launch.resolve("os.path.join")
    with pytest.raises(TypeError, match="JSON only"):
        launch.call("os.path:join", object(), nproc=2)
