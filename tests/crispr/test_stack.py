"""Boosted-tree baseline, out-of-sample predictions and the stacked (blended) method of the CRISPR branch."""

import json

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

from omicslm.crispr.gbm import feature_names, sequence_features
from omicslm.crispr.methods import check_stack_methods
from omicslm.crispr.split import split_guides
from omicslm.crispr.stack import fit_blend, stack_method
from omicslm.crispr.tokenize import build_dataset
from omicslm.crispr.train import out_of_sample, train_method
from omicslm.errors import InputError

TRAIN = {"max_epochs": 2, "lr": 3e-3, "warmup_steps": 2, "patience": 2, "device": "cpu"}
KW = dict(encoder_dir=None, encoder_name="none", k=6, batch_size=32, head_hidden=8, dropout=0.0, pooling="mean",
          train=TRAIN, threads=1)


@pytest.fixture(scope="module")
def signal_data(tmp_path_factory):
    """300 guides whose efficiency is set by two spacer bases (+ noise): a learnable rule."""
    d = tmp_path_factory.mktemp("crispr_stack")
    rng = np.random.default_rng(5)
    rows = []
    for i in range(300):
        spacer = "".join(rng.choice(list("ACGT"), 20))
        mer30 = "".join(rng.choice(list("ACGT"), 4)) + spacer + "TGG" + "".join(rng.choice(list("ACGT"), 3))
        eff = 20 + 50 * (spacer[19] == "G") + 20 * (spacer[15] == "C") + rng.normal(0, 5)
        rows.append((f"g{i}", spacer, f"g{i}_p_5", mer30, float(np.clip(eff, 0, 100))))
    pd.DataFrame(rows, columns=["id", "grna", "site", "mer30", "efficiency"]).to_csv(d / "g.tsv", sep="\t",
                                                                                     index=False)
    split_guides(d / "g.tsv", d / "s.tsv", dev_fraction=0.2, test_fraction=0.2, seed=0)
    build_dataset(d / "g.tsv", d / "s.tsv", d / "ds.npz")
    return d


def test_sequence_features_are_position_specific_one_and_two_mers():
    mer = "ACGT" + "GGGGGCCCCCAAAAATTTTT" + "AGG" + "TCA"
    x = sequence_features(np.array([mer, mer.replace("A", "T")]), energy=np.array([-20.0, -3.5]))
    names = feature_names(30, energy=True)
    assert x.shape == (2, 30 * 4 + 29 * 16 + 16 + 1 + 1) and len(names) == x.shape[1]
    row = dict(zip(names, x[0]))
    assert row["A@1"] == 1 and row["C@2"] == 1 and row["A@2"] == 0 and row["AC@1"] == 1 and row["CG@2"] == 1
    assert row["gc_count"] == 10 and row["n_GG"] == 4 and row["n_CA"] == 1 and row["binding_energy"] == -20
    assert x[0, :120].sum() == 30 and x[0, 120:120 + 464].sum() == 29  # one base and one dimer per position
    assert dict(zip(names, x[1]))["T@1"] == 1


def test_thermo_and_fold_feature_groups():
    spacer = "GGGGGCCCCCAAAAATTTTT"
    mer = "ACGT" + spacer + "AGG" + "TCA"
    base = sequence_features(np.array([mer]))
    x = sequence_features(np.array([mer]), groups=["thermo", "fold"])
    names = feature_names(30, groups=["thermo", "fold"])
    assert x.shape == (1, base.shape[1] + 7) and len(names) == x.shape[1]
    np.testing.assert_array_equal(x[:, :base.shape[1]], base)  # the groups are appended
    row = dict(zip(names, x[0]))
    # [19, 24) = the spacer's last 5 nt "TTTTT": 4 SantaLucia TT stacks of -1.00
    assert row["dG_pam_side5"] == pytest.approx(-4.0)
    # [3, 8) = "TGGGG": TG -1.45, then GG -1.84 x 3
    assert row["dG_distal5"] == pytest.approx(-1.45 + 3 * -1.84)
    assert row["dG_30mer"] < row["dG_middle8"] < 0 and row["longest_run"] == 5
    import RNA
    assert row["mfe_spacer"] == pytest.approx(RNA.fold(spacer.replace("T", "U"))[1])
    assert row["mfe_spacer_scaffold"] <= -10  # the scaffold's own hairpins
    other = sequence_features(np.array([mer]), groups=["fold"], scaffold="aaaaaaaaaa")  # a method's `scaffold:`
    assert other[0, -1] == pytest.approx(RNA.fold(spacer.replace("T", "U") + "A" * 10)[1])
    with pytest.raises(ValueError, match="unknown gbm feature group"):
        sequence_features(np.array([mer]), groups=["shape"])


def test_out_of_sample_predictions_by_fold_member_or_dev_rows():
    roles = np.array(["train", "train", "dev", "dev", "test"])
    pred = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    plain = out_of_sample(pred, roles, [roles == "dev"], False, [pred])
    np.testing.assert_array_equal(plain, [np.nan, np.nan, 3.0, 4.0, np.nan])
    members = [np.array([10.0, 11, 12, 13, 14]), np.array([20.0, 21, 22, 23, 24])]
    devs = [np.array([1, 0, 1, 0, 0], bool), np.array([0, 1, 0, 1, 0], bool)]  # pooled train+dev cut in 2 folds
    cv = out_of_sample(np.mean(members, 0), roles, devs, True, members)
    np.testing.assert_array_equal(cv, [10.0, 21.0, 12.0, 23.0, np.nan])  # each by the member that held it out


def test_gbm_cross_validation_members_learn_the_rule_and_give_out_of_fold_predictions(signal_data):
    d = signal_data
    rec = train_method(d / "ds.npz", d / "gbm.tsv", d / "gbm.json", method="gbm_cv",
                       spec={"kind": "gbm", "ensemble": 3, "ensemble_folds": True, "features": ["thermo", "fold"],
                             "gbm": {"max_iter": 300, "n_iter_no_change": 20}}, work_dir=d / "gbm_work", **KW)
    pred = pd.read_csv(d / "gbm.tsv", sep="\t")
    assert len(pred) == 300 and set(pred.role) == {"train", "dev", "test"}  # every guide is written
    assert pred.oof[pred.role != "test"].notna().all() and pred.oof[pred.role == "test"].isna().all()
    assert not np.allclose(pred.oof[pred.role != "test"], pred.predicted[pred.role != "test"])
    test = pred[pred.role == "test"]
    assert spearmanr(test.measured, test.predicted).statistic > 0.7  # the planted two-base rule
    assert rec["ensemble"] == 3 and rec["encoder"] == "none (sequence features + thermo + fold)" and rec["trainable_params"] > 0
    assert len(rec["best_epoch"]) == 3 and all(1 <= it <= 300 for it in rec["best_epoch"])
    assert json.loads((d / "gbm.json").read_text()) == rec


def test_fit_blend_recovers_non_negative_weights():
    rng = np.random.default_rng(0)
    a, b, c = rng.normal(50, 10, 500), rng.normal(50, 10, 500), rng.normal(50, 10, 500)
    y = 5 + 0.7 * a + 0.3 * b - 0.2 * c
    intercept, w = fit_blend(np.column_stack([a, b, c]), y)
    assert w == pytest.approx([0.7, 0.3, 0.0], abs=0.02)  # a negative contribution is clipped to 0
    assert intercept == pytest.approx(y.mean() - 0.7 * a.mean() - 0.3 * b.mean(), abs=0.05)


def _member(path, measured, roles, predicted, oof):
    pd.DataFrame({"id": [f"g{i}" for i in range(len(roles))], "role": roles, "measured": measured,
                  "predicted": predicted, "oof": oof}).to_csv(path.with_suffix(".tsv"), sep="\t", index=False)
    path.with_suffix(".json").write_text(json.dumps({"method": path.name, "seconds": 2.0, "trainable_params": 10,
                                                     "encoder": "x"}))
    return path.with_suffix(".tsv"), path.with_suffix(".json")


def test_stack_fits_on_out_of_sample_rows_only(tmp_path):
    rng = np.random.default_rng(1)
    n = 60
    roles = np.array(["train"] * 40 + ["dev"] * 10 + ["test"] * 10)
    y = rng.uniform(0, 100, n)
    good = y + rng.normal(0, 5, n)
    noise = rng.uniform(0, 100, n)
    a = _member(tmp_path / "good", y, roles, good, np.where(roles == "test", np.nan, good))
    b = _member(tmp_path / "noise", y, roles, noise, np.where(roles == "test", np.nan, noise))
    rec = stack_method([a[0], b[0]], [a[1], b[1]], tmp_path / "s.tsv", tmp_path / "s.json", method="blend",
                       members=["good", "noise"])
    assert rec["fit_rows"] == 50 and rec["weights"][0] > 0.8 and rec["weights"][1] < 0.1
    assert rec["seconds"] >= 4.0 and rec["trainable_params"] == 20 + 3 and rec["members"] == ["good", "noise"]
    out = pd.read_csv(tmp_path / "s.tsv", sep="\t")
    assert out.oof.isna().all() and out.predicted.between(0, 100).all() and list(out.role) == list(roles)
    # the test rows' measured values never enter the fit: changing them leaves the weights as they were
    y2 = np.where(roles == "test", 100 - y, y)
    a2 = _member(tmp_path / "good2", y2, roles, good, np.where(roles == "test", np.nan, good))
    b2 = _member(tmp_path / "noise2", y2, roles, noise, np.where(roles == "test", np.nan, noise))
    rec2 = stack_method([a2[0], b2[0]], [a2[1], b2[1]], tmp_path / "s2.tsv", tmp_path / "s2.json", method="blend",
                        members=["good2", "noise2"])
    assert rec2["weights"] == rec["weights"] and rec2["intercept"] == rec["intercept"]


def test_stack_input_errors(tmp_path):
    roles = np.array(["train"] * 20 + ["test"] * 5)
    y = np.linspace(0, 100, 25)
    a = _member(tmp_path / "a", y, roles, y, np.where(roles == "train", y, np.nan))
    few = _member(tmp_path / "few", y, roles, y, np.where(np.arange(25) < 5, y, np.nan))
    with pytest.raises(InputError, match="only 5 guides have an out-of-sample prediction"):
        stack_method([a[0], few[0]], [a[1], few[1]], tmp_path / "x.tsv", tmp_path / "x.json", method="s",
                     members=["a", "few"])
    other = tmp_path / "other.tsv"
    pd.read_csv(a[0], sep="\t").iloc[::-1].to_csv(other, sep="\t", index=False)
    with pytest.raises(InputError, match="guides or roles differ"):
        stack_method([a[0], other], [a[1], a[1]], tmp_path / "x.tsv", tmp_path / "x.json", method="s",
                     members=["a", "other"])
    assert not (tmp_path / "x.tsv").exists()


@pytest.mark.parametrize("methods, message", [
    ({"s": {"kind": "stack", "members": []}}, "non-empty `members`"),
    ({"s": {"kind": "stack", "members": ["cnn"]}}, r"member 'cnn' is not an \(enabled\) method"),
    ({"a": {"kind": "cnn"}, "s": {"kind": "stack", "members": ["a"]}, "t": {"kind": "stack", "members": ["s"]}},
     "member 's' is itself a stack"),
])
def test_stack_config_errors(methods, message):
    with pytest.raises(ValueError, match=message):
        check_stack_methods(methods)
    check_stack_methods({"a": {"kind": "cnn"}, "s": {"kind": "stack", "members": ["a"]}})
