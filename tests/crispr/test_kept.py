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


# --------------------------------------------------------------------------- crispr_predict


def test_predicting_the_training_guides_gives_their_training_predictions(trained, data, tmp_path):  # noqa: F811
    from omicslm.crispr.fasta import write_fasta
    from omicslm.crispr.predict import predict_fasta
    from omicslm.crispr.tokenize import load_dataset

    ds = load_dataset(data / "ds.npz")
    write_fasta(tmp_path / "g.fa", [(gid, m) for gid, m in zip(ds["id"], ds["mer30"])])
    for method in ("cnn_ens", "stack", "lora_r4"):
        out = predict_fasta(tmp_path / "g.fa", trained / method / "kept", tmp_path / f"{method}.tsv")
        own = out[(out.strand == "+") & (out.position == 5)].set_index("seq_id")  # the guide each 30mer holds
        assert list(own.index) == list(ds["id"]) and list(own.mer30) == list(ds["mer30"])
        expected = pd.read_csv(trained / method / "predictions.tsv", sep="\t", dtype={"id": str}).set_index("id")
        written = pd.read_csv(tmp_path / f"{method}.tsv", sep="\t", dtype={"seq_id": str})
        written = written[(written.strand == "+") & (written.position == 5)].set_index("seq_id")
        assert [f"{x:.4f}" for x in written.predicted] == [f"{x:.4f}" for x in expected.predicted.loc[written.index]]
        assert written.spread.notna().all() == (method == "cnn_ens")


def test_every_site_on_both_strands_and_what_is_left_out(trained, tmp_path):
    from omicslm.crispr.kmers import revcomp
    from omicslm.crispr.predict import predict_fasta

    rng = np.random.default_rng(3)
    seq = "".join(rng.choice(list("ACGT"), 400))
    with_n = seq[:200] + "N" + seq[201:]
    (tmp_path / "mine.fa").write_text(f">gene1 some description\n{seq[:200]}\n{seq[200:]}\n>short\nACGTAGG\n"
                                      f">flat\n{'A' * 60}\n>gene2\n{with_n}\n")
    out = predict_fasta(tmp_path / "mine.fa", trained / "gbm_folds" / "kept", tmp_path / "out.tsv")
    g1 = out[out.seq_id == "gene1"]
    # every NGG on both strands whose 30mer fits: count them directly
    plus = sum(seq[i + 21:i + 23] == "GG" for i in range(4, 400 - 26 + 1))
    rc = revcomp(seq)
    minus = sum(rc[i + 21:i + 23] == "GG" for i in range(4, 400 - 26 + 1))
    assert (g1.strand == "+").sum() == plus and (g1.strand == "-").sum() == minus
    assert (g1.pam.str[1:] == "GG").all() and (g1.mer30.str.len() == 30).all()
    for _, r in g1[g1.strand == "+"].head(5).iterrows():
        assert seq[r.position - 1:r.position + 19] == r.spacer
    assert sorted(g1["rank"]) == list(range(1, len(g1) + 1))
    assert g1.sort_values("rank").predicted.is_monotonic_decreasing
    np.testing.assert_allclose(g1.gc, g1.spacer.str.count("[GC]") / 20)
    assert (g1.tttt == g1.spacer.str.contains("TTTT")).all()
    g2 = out[out.seq_id == "gene2"]
    assert 0 < len(g2) < len(g1) and not g2.mer30.str.contains("N").any()  # only the sites touching the N go
    assert set(out.seq_id) == {"gene1", "gene2"}  # short (< 30 nt) and flat (no NGG) are logged, not an error
    written = pd.read_csv(tmp_path / "out.tsv", sep="\t")
    assert list(written.columns) == ["seq_id", "strand", "position", "spacer", "pam", "mer30", "predicted", "spread",
                                     "rank", "gc", "tttt"]


def test_predict_input_errors(trained, tmp_path):
    from omicslm.crispr.predict import predict_fasta

    (tmp_path / "empty.fa").write_text("")
    with pytest.raises(InputError, match="empty fasta"):
        predict_fasta(tmp_path / "empty.fa", trained / "cnn_ens" / "kept", tmp_path / "o.tsv")
    (tmp_path / "dup.fa").write_text(">a\nACGT\n>a\nACGT\n")
    with pytest.raises(InputError, match="duplicate record name"):
        predict_fasta(tmp_path / "dup.fa", trained / "cnn_ens" / "kept", tmp_path / "o.tsv")
    assert not (tmp_path / "o.tsv").exists()


def test_the_method_is_chosen_on_out_of_sample_rows_never_the_test_split(trained):
    from scipy.stats import spearmanr

    from omicslm.crispr.predict import choose_method

    names = [*METHODS, "stack"]
    best, scores = choose_method({m: trained / m / "predictions.tsv" for m in names},
                                 {m: trained / m / "kept" for m in names})
    assert best == max(scores, key=lambda m: scores[m][0])
    t = pd.read_csv(trained / "cnn_ens" / "predictions.tsv", sep="\t")
    dev = t[t.role == "dev"]
    assert scores["cnn_ens"] == (pytest.approx(spearmanr(dev.oof, dev.measured).statistic), len(dev))
    assert scores["gbm_folds"][1] == (t.role != "test").sum()  # every train+dev guide has its fold's prediction
