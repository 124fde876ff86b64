"""Kept CRISPR methods: saved without pickle, rebuilt in a fresh process, scoring guides as training scored them."""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from omicslm.crispr.kept import load_kept
from omicslm.crispr.stack import stack_method
from omicslm.crispr.train import train_method
from omicslm.errors import InputError
from tests.crispr.test_models import TRAIN, data  # noqa: F401  (the module's fixture: guides + a tiny encoder)

KW = dict(encoder_name="tiny", k=6, batch_size=16, head_hidden=8, dropout=0.0, pooling="mean", train=TRAIN,
          threads=1)
METHODS = {
    "lora_r4": {"kind": "lora", "r": 4},
    "frozen_dense3": {"kind": "frozen", "head_layers": 3},
    "finetune": {"kind": "finetune", "head_layers": 1},
    "cnn_ens": {"kind": "cnn", "ensemble": 2},
    "gbm_folds": {"kind": "gbm", "ensemble": 2, "ensemble_folds": True, "gbm": {"max_iter": 30}},
}
FRESH = """
import sys, numpy as np
from omicslm.crispr.kept import load_kept
from omicslm.crispr.tokenize import load_dataset
m = load_kept(sys.argv[1])
print("\\n".join(f"{x:.4f}" for x in m.predict(load_dataset(sys.argv[2])["mer30"])))
"""


@pytest.fixture(scope="module")
def trained(data):  # noqa: F811
    root = data / "kept_models"
    for name, spec in METHODS.items():
        out = root / name
        train_method(data / "ds.npz", out / "predictions.tsv", out / "runtime.json", method=name, spec=spec,
                     encoder_dir=data / "encoder", work_dir=out / "work", kept_dir=out / "kept", **KW)
    out = root / "stack"
    stack_method([root / m / "predictions.tsv" for m in ("cnn_ens", "gbm_folds")],
                 [root / m / "runtime.json" for m in ("cnn_ens", "gbm_folds")], out / "predictions.tsv",
                 out / "runtime.json", method="stack", members=["cnn_ens", "gbm_folds"], kept_dir=out / "kept")
    return root


@pytest.mark.parametrize("method", [*METHODS, "stack"])
def test_a_kept_method_reproduces_its_predictions_in_a_fresh_process(trained, data, method):  # noqa: F811
    kept = trained / method / "kept"
    files = {p.name for p in kept.iterdir()}
    assert "method.json" in files and not any(f.endswith((".pt", ".pkl", ".pickle", ".joblib")) for f in files)
    res = subprocess.run([sys.executable, "-c", FRESH, str(kept), str(data / "ds.npz")], capture_output=True,
                         text=True, check=True)
    expected = pd.read_csv(trained / method / "predictions.tsv", sep="\t")
    assert res.stdout.split() == [f"{x:.4f}" for x in expected.predicted]  # every guide, test split included


def test_kept_members_and_their_spread(trained, data):  # noqa: F811
    from omicslm.crispr.tokenize import load_dataset

    mer30 = load_dataset(data / "ds.npz")["mer30"][:10]
    ens = load_kept(trained / "cnn_ens" / "kept")
    per_member = ens.predict_members(mer30)
    assert per_member.shape == (2, 10) and not np.allclose(per_member[0], per_member[1])
    np.testing.assert_allclose(ens.predict(mer30), per_member.mean(0))
    rec = json.loads((trained / "cnn_ens" / "kept" / "method.json").read_text())
    assert [m["file"] for m in rec["members"]] == ["member0.safetensors", "member1.safetensors"]
    assert {"y_mean", "y_sd", "e_mean", "e_sd"} <= set(rec["members"][0])


def test_kept_errors(trained, tmp_path):
    with pytest.raises(InputError, match="not a kept CRISPR method"):
        load_kept(tmp_path)
    bad = tmp_path / "cnn"
    bad.mkdir()
    rec = json.loads((trained / "cnn_ens" / "kept" / "method.json").read_text())
    (bad / "method.json").write_text(json.dumps(rec))
    (bad / "member0.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(InputError, match="member0.safetensors"):
        load_kept(bad)
