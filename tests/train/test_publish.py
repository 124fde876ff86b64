import json

import numpy as np
import pytest

from omicslm.io.runtime import write_runtime
from omicslm.train.config import TrainConfig
from omicslm.train.publish import publish_run, replacing_dir, train_seconds
from omicslm.train.state import TrainState


def _work_dir(path, weights=b"w1"):
    (path / "best").mkdir(parents=True)
    (path / "best" / "model.safetensors").write_bytes(weights)
    (path / "best" / "config.json").write_text("{}\n")
    (path / "history.tsv").write_text("epoch\tseconds\n0\t1.5\n")
    (path / "last").mkdir()  # not published
    return path


def test_publish_run_copies_best_history_and_writes_the_summary(tmp_path):
    work = _work_dir(tmp_path / "work")
    out = tmp_path / "out"
    assert publish_run(work, out, summary_name="train_summary.json", summary={"model": "m", "best_epoch": 0}) == out
    assert sorted(p.name for p in out.iterdir()) == ["best", "history.tsv", "train_summary.json"]
    assert sorted(p.name for p in (out / "best").iterdir()) == ["config.json", "model.safetensors"]
    assert (out / "history.tsv").read_text() == (work / "history.tsv").read_text()
    assert json.loads((out / "train_summary.json").read_text()) == {"model": "m", "best_epoch": 0}

    # a rerun replaces every piece and leaves no temporary entry behind
    (work / "best" / "model.safetensors").write_bytes(b"w2")
    (work / "best" / "config.json").unlink()
    publish_run(work, out, summary_name="train_summary.json", summary={"model": "m", "best_epoch": 3})
    assert sorted(p.name for p in out.iterdir()) == ["best", "history.tsv", "train_summary.json"]
    assert [p.name for p in (out / "best").iterdir()] == ["model.safetensors"]
    assert (out / "best" / "model.safetensors").read_bytes() == b"w2"
    assert json.loads((out / "train_summary.json").read_text())["best_epoch"] == 3


def test_publish_run_without_best_checkpoint_writes_nothing(tmp_path):
    (tmp_path / "work").mkdir()
    with pytest.raises(RuntimeError, match="without a best checkpoint"):
        publish_run(tmp_path / "work", tmp_path / "out", summary_name="s.json", summary={})
    assert not (tmp_path / "out").exists()


def test_replacing_dir_keeps_the_old_directory_when_the_block_fails(tmp_path):
    dst = tmp_path / "encoder"
    dst.mkdir()
    (dst / "old.txt").write_text("old")
    with pytest.raises(KeyError):
        with replacing_dir(dst) as tmp:
            (tmp / "new.txt").write_text("new")
            raise KeyError("killed")
    assert [p.name for p in tmp_path.iterdir()] == ["encoder"]
    assert [p.name for p in dst.iterdir()] == ["old.txt"]
    with replacing_dir(dst) as tmp:
        (tmp / "new.txt").write_text("new")
    assert [p.name for p in tmp_path.iterdir()] == ["encoder"]
    assert [p.name for p in dst.iterdir()] == ["new.txt"]


def test_write_runtime_keys_types_and_extras(tmp_path):
    out = write_runtime(tmp_path / "rt" / "runtime.json", method="m", seconds=np.float32(2.5), threads=np.int64(4),
                        device="cpu", train_seconds=10.0)
    text = out.read_text()
    assert text.endswith("}\n")
    record = json.loads(text)
    assert list(record) == ["method", "seconds", "threads", "device", "train_seconds"]
    assert record == {"method": "m", "seconds": 2.5, "threads": 4, "device": "cpu", "train_seconds": 10.0}
    assert [p.name for p in out.parent.iterdir()] == ["runtime.json"]
    with pytest.raises(TypeError):
        write_runtime(tmp_path / "x.json", method="m", seconds=1.0)  # threads is required


def test_train_seconds_sums_the_epochs_of_every_run():
    assert train_seconds([{"epoch": 0, "seconds": 1.25}, {"epoch": 1, "seconds": 2.0}]) == 3.25
    assert train_seconds([]) == 0.0


def test_train_state_serialises_to_the_checkpoint_keys():
    state = TrainState.start(TrainConfig(early_stopping_metric="val_r2", early_stopping_mode="max"))
    d = state.to_dict()
    assert list(d) == ["epoch", "step_in_epoch", "global_step", "epoch_loss_sum", "epoch_loss_count",
                       "epoch_seconds", "best_metric", "best_epoch", "bad_epochs", "epochs_run", "stopped_early",
                       "done", "metric", "mode", "history", "train_config"]
    assert (d["metric"], d["mode"], d["train_config"]["betas"]) == ("val_r2", "max", [0.9, 0.999])
    assert TrainState.from_dict(json.loads(json.dumps(d))) == state
