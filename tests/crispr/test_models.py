import json

import numpy as np
import pandas as pd
import pytest
import torch

from omicslm.crispr.energy import binding_energy, compute_energies, have_vienna
from omicslm.crispr.evaluate import evaluate_methods, regression_metrics
from omicslm.crispr.fasta import write_fasta
from omicslm.crispr.models import build_model, count_trainable, one_hot
from omicslm.crispr.pretrain import chunk_fasta, mask_spans, pretrain_encoder
from omicslm.crispr.split import split_guides
from omicslm.crispr.tokenize import CLS, MASK, PAD, SEP, build_dataset
from omicslm.crispr.train import train_method
from omicslm.errors import InputError
from tests.crispr.test_join_split_tokenize import guides_table

TRAIN = {"max_epochs": 2, "lr": 3e-3, "warmup_steps": 2, "patience": 2, "device": "cpu", "checkpoint_every_steps": 5}
TINY = dict(k=6, hidden=16, layers=1, heads=2, intermediate=32, max_len=32, dropout=0.0, mask_prob=0.15,
            batch_size=8, batches_per_epoch=3, dev_fraction=0.2)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("crispr")
    g = guides_table(d / "g.tsv", n=80, seed=1)
    split_guides(g, d / "s.tsv", dev_fraction=0.2, test_fraction=0.2, seed=0)
    build_dataset(g, d / "s.tsv", d / "ds.npz")
    write_fasta(d / "dna.fa", [("x", "".join(np.random.default_rng(0).choice(list("ACGT"), 300))),
                               ("y", "ACGT" * 5 + "NNNN" + "TTGCA" * 6)])
    pretrain_encoder([d / "dna.fa"], d / "encoder", d / "enc_work", train=TRAIN, **TINY)
    return d


def test_pretrained_encoder_is_a_hf_directory_with_dnabert_vocab(data):
    assert {"config.json", "model.safetensors", "vocab.txt"} <= {p.name for p in (data / "encoder").iterdir()}
    assert (data / "encoder" / "vocab.txt").read_text().split()[:6] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]",
                                                                         "AAAAAA"]
    assert (data / "enc_work" / "history.tsv").read_text().count("\n") == 3  # header + 2 epochs


def test_span_masking():
    ids = torch.full((4, 40), 100, dtype=torch.long)
    ids[:, 0], ids[:, -1] = CLS, SEP
    inputs, labels = mask_spans(ids, k=6, mask_prob=0.5, generator=torch.Generator().manual_seed(0))
    masked = labels != -100
    assert not masked[:, 0].any() and not masked[:, -1].any()  # specials never masked
    assert (labels[masked] == 100).all() and (inputs[masked] == MASK).float().mean() > 0.5
    # masked tokens come in runs of at least k (spans of k, possibly merged), apart from the sequence ends
    for row in masked[:, 1:-1].tolist():
        runs = "".join("1" if m else "0" for m in row).strip("0").split("0")
        assert all(len(r) >= 6 for r in runs[1:-1] if r)


def test_chunk_fasta_drops_n_runs(tmp_path):
    write_fasta(tmp_path / "a.fa", [("a", "ACGTACGTAC" + "N" + "ACGTAC")])
    rows = chunk_fasta([tmp_path / "a.fa"], k=6, max_len=10, min_kmers=1)
    assert rows.shape == (2, 10)  # the 10 nt piece (5 k-mers) and the 6 nt piece (1 k-mer), never across N
    assert sorted((r != PAD).sum() for r in rows) == [3, 7]


@pytest.mark.parametrize("method, spec", [("lora_r4", {"kind": "lora", "r": 4}), ("cnn", {"kind": "cnn"}),
                                          ("frozen_dense3", {"kind": "frozen", "head_layers": 3})])
def test_train_method_writes_predictions_and_runtime(data, method, spec):
    out = data / method
    rec = train_method(data / "ds.npz", out / "pred.tsv", out / "runtime.json", method=method, spec=spec,
                       encoder_dir=data / "encoder", encoder_name="tiny", work_dir=out / "work", k=6, batch_size=16,
                       head_hidden=8, dropout=0.0, pooling="mean", train=TRAIN, threads=1)
    pred = pd.read_csv(out / "pred.tsv", sep="\t")
    assert set(pred.role) == {"train", "dev", "test"} and pred.predicted.between(0, 100).all()
    # out-of-sample predictions: the dev rows' (no member trained on them), never the train or test rows'
    assert (pred.oof.notna() == (pred.role == "dev")).all()
    assert np.allclose(pred.oof[pred.role == "dev"], pred.predicted[pred.role == "dev"])
    assert json.loads((out / "runtime.json").read_text()) == rec
    assert rec["method"] == method and rec["seconds"] > 0 and rec["trainable_params"] > 0
    assert rec["encoder"] == ("tiny" if spec["kind"] != "cnn" else "none (one-hot 30mer)")
    # resuming a finished run trains nothing and reproduces the predictions
    again = train_method(data / "ds.npz", out / "pred2.tsv", out / "rt2.json", method=method, spec=spec,
                         encoder_dir=data / "encoder", encoder_name="tiny", work_dir=out / "work", k=6, batch_size=16,
                         head_hidden=8, dropout=0.0, pooling="mean", train=TRAIN, threads=1)
    assert (out / "pred2.tsv").read_text() == (out / "pred.tsv").read_text() and again["best_epoch"] == rec["best_epoch"]


def test_cnn_ensemble_averages_its_seeded_members(data):
    kw = dict(encoder_dir=None, encoder_name="tiny", k=6, batch_size=16, head_hidden=8, dropout=0.0, pooling="mean",
              train=TRAIN, threads=1)
    out = data / "ens"
    single = [train_method(data / "ds.npz", out / f"p{s}.tsv", out / f"r{s}.json", method="cnn",
                           spec={"kind": "cnn", "train": {"seed": s}}, work_dir=out / f"w{s}", **kw) for s in (0, 1)]
    rec = train_method(data / "ds.npz", out / "pe.tsv", out / "re.json", method="cnn_ens",
                       spec={"kind": "cnn", "ensemble": 2}, work_dir=out / "we", **kw)
    p0, p1, pe = (pd.read_csv(out / f, sep="\t") for f in ("p0.tsv", "p1.tsv", "pe.tsv"))
    assert not np.allclose(p0.predicted, p1.predicted)  # members differ (seeded init and batch order) ...
    np.testing.assert_allclose(pe.predicted, (p0.predicted + p1.predicted) / 2, atol=2e-4)  # ... and are averaged
    assert list(pe.id) == list(p0.id) and rec["ensemble"] == 2
    assert rec["trainable_params"] == 2 * single[0]["trainable_params"]
    assert rec["best_epoch"] == [single[0]["best_epoch"], single[1]["best_epoch"]]
    with pytest.raises(ValueError, match="ensemble"):
        train_method(data / "ds.npz", out / "x.tsv", out / "x.json", method="bad", spec={"kind": "cnn", "ensemble": 0},
                     work_dir=out / "wx", **kw)


def test_cross_validation_members_use_disjoint_spacer_folds(data):
    from omicslm.crispr.kmers import FLANK5, SPACER
    from omicslm.crispr.tokenize import load_dataset
    from omicslm.crispr.train import fold_roles

    d = load_dataset(data / "ds.npz")
    d["mer30"] = d["mer30"].copy()
    d["mer30"][1] = d["mer30"][0]  # two guides with one spacer must share a fold
    roles = fold_roles(d, 3, seed=0)
    pool = d["role"] != "test"
    dev_count = sum((r == "dev").astype(int) for r in roles)
    assert (dev_count[pool] == 1).all() and (dev_count[~pool] == 0).all()  # each pooled guide is held out once
    assert all((r[~pool] == "test").all() and (r[pool] != "test").all() for r in roles)
    spacer = np.array([m[FLANK5:FLANK5 + SPACER] for m in d["mer30"]])
    for r in roles:
        assert not set(spacer[r == "dev"]) & set(spacer[r == "train"])
    assert [r[0] for r in roles].count("dev") == 1 and [r[1] for r in roles] == [r[0] for r in roles]

    kw = dict(encoder_dir=None, encoder_name="tiny", k=6, batch_size=16, head_hidden=8, dropout=0.0, pooling="mean",
              train=TRAIN, threads=1)
    out = data / "cv"
    rec = train_method(data / "ds.npz", out / "p.tsv", out / "r.json", method="cnn_cv",
                       spec={"kind": "cnn", "ensemble": 2, "ensemble_folds": True}, work_dir=out / "w", **kw)
    pred = pd.read_csv(out / "p.tsv", sep="\t")
    assert rec["ensemble"] == 2 and set(pred.role) == {"train", "dev", "test"}  # the split's own roles
    assert len(pred) == len(d["role"]) and pred.predicted.between(0, 100).all()
    # every train+dev guide has the prediction of the member whose fold held it out; test rows none
    assert (pred.oof.notna() == (pred.role != "test")).all()
    with pytest.raises(ValueError, match="ensemble >= 2"):
        fold_roles(d, 1, seed=0)


def test_trainable_parameters_by_kind(data):
    kw = dict(encoder_dir=data / "encoder", k=6, head_hidden=8, dropout=0.0, pooling="mean", seq_length=30,
              use_energy=False)
    n = {name: count_trainable(build_model(spec, **kw)) for name, spec in {
        "lora8": {"kind": "lora", "r": 8}, "lora16": {"kind": "lora", "r": 16}, "frozen1": {"kind": "frozen"},
        "frozen3": {"kind": "frozen", "head_layers": 3}, "full": {"kind": "finetune"}}.items()}
    assert n["frozen1"] == 16 + 1  # a single linear map from the pooled hidden state
    assert n["frozen1"] < n["frozen3"] < n["lora8"] < n["lora16"] < n["full"]
    assert n["lora16"] - n["frozen1"] == 2 * (n["lora8"] - n["frozen1"])


def test_foreign_vocab_checkpoint_is_rejected(data, tmp_path):
    import shutil
    shutil.copytree(data / "encoder", tmp_path / "enc")
    (tmp_path / "enc" / "vocab.txt").write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nA\nC\n")
    with pytest.raises(InputError, match="not the DNABERT-6 vocabulary: token 5 is 'A'"):
        build_model({"kind": "finetune"}, encoder_dir=tmp_path / "enc", k=6, head_hidden=8, dropout=0.0,
                    pooling="mean", seq_length=30, use_energy=False)


def test_one_hot():
    x = one_hot(["ACGT", "TTTT"])
    assert x.shape == (2, 4, 4) and x[0].argmax(0).tolist() == [0, 1, 2, 3] and x[1, 3].sum() == 4


def test_metrics_and_eval_table(tmp_path):
    m = regression_metrics(np.array([0.0, 10.0, 20.0, 30.0]), np.array([2.0, 8.0, 22.0, 28.0]))
    assert m["mse"] == pytest.approx(4.0) and m["rmse"] == pytest.approx(2.0) and m["mae"] == pytest.approx(2.0)
    assert m["spearman"] == pytest.approx(1.0)
    for name, pred in (("good", [1, 2, 3, 4]), ("bad", [4, 3, 2, 1])):
        pd.DataFrame({"id": list("abcde"), "role": ["test"] * 4 + ["dev"], "measured": [10, 20, 30, 40, 0],
                      "predicted": [*pred, 99]}).to_csv(tmp_path / f"{name}.tsv", sep="\t", index=False)
        (tmp_path / f"{name}.json").write_text(json.dumps({"method": name, "seconds": 1.5, "threads": 1,
                                                           "trainable_params": 7, "encoder": "e"}))
    table = evaluate_methods([tmp_path / "bad.tsv", tmp_path / "good.tsv"], [tmp_path / "bad.json",
                                                                               tmp_path / "good.json"], tmp_path / "e.tsv")
    assert table.method.tolist() == ["good", "bad"] and table.n_test.tolist() == [4, 4]
    back = pd.read_csv(tmp_path / "e.tsv", sep="\t")
    assert list(back.columns) == ["method", "dataset", "n_test", "n_overlap_removed", "rmse", "mse", "mae", "spearman",
                                  "pearson", "trainable_params", "train_seconds", "encoder"]
    assert back.spearman.tolist() == [1.0, -1.0] and set(back.dataset) == {"heldout"}
    # an external set: scored on its guides whose spacer no training guide has, rows after the held-out ones
    pd.DataFrame({"id": list("pqrst"), "mer30": ["A" * 30] * 5, "measured": [5, 15, 25, 35, 45],
                  "in_training": [False, False, False, False, True], "good": [1, 2, 4, 3, 0], "bad": [9, 1, 2, 3, 0]}
                 ).to_csv(tmp_path / "ext.tsv", sep="\t", index=False)
    table = evaluate_methods([tmp_path / "bad.tsv", tmp_path / "good.tsv"], [tmp_path / "bad.json",
                                                                               tmp_path / "good.json"], tmp_path / "e.tsv",
                             external={"other_screen": tmp_path / "ext.tsv"})
    assert table.dataset.tolist() == ["heldout", "heldout", "other_screen", "other_screen"]
    ext = table[table.dataset == "other_screen"].set_index("method")
    assert ext.n_test.tolist() == [4, 4] and ext.n_overlap_removed.tolist() == [1, 1]
    assert ext.loc["good", "spearman"] == pytest.approx(0.8) and ext.loc["bad", "spearman"] == pytest.approx(-0.2)
    assert ext.loc["good", "trainable_params"] == 7 and list(ext.index) == ["good", "bad"]


@pytest.mark.skipif(not have_vienna(), reason="ViennaRNA Python bindings (import RNA) not installed")
def test_binding_energy(tmp_path):
    import RNA
    spacer = "GCGCGCATATGCGCGCATAT"
    _, fold = RNA.fold(spacer.replace("T", "U"))
    rna = spacer.replace("T", "U")
    hybrid = {"GC": -2.7, "CG": -1.7, "CA": -0.9, "AU": -0.9, "UA": -0.6, "UG": -1.6}
    stacks = [hybrid[rna[i:i + 2]] for i in range(19)]
    stacks[-1] += 0.25  # ends in T: an A/T pair closes the hybrid (the first base, G, does not)
    weights = [1.80067099242007, 1.95666668400006, 1.90472004401173, 2.13047270152512, 1.37853848098249,
               1.46460783730408, 1.0, 1.387220146823, 1.51401000729362, 1.98058344620751, 1.87939168587699,
               1.7222593588838, 2.02228445489326, 1.92692086621503, 2.08041972716723, 1.94496755678903,
               2.14539112893591, 2.04277109036766, 2.24911493451185]
    duplex = sum({"GC": -2.24, "CG": -2.17, "CA": -1.45, "AT": -0.88, "TA": -0.58, "TG": -1.45}[spacer[i:i + 2]]
                 for i in range(19))
    assert binding_energy(spacer) == pytest.approx(sum(w * e for w, e in zip(weights, stacks)) - duplex - fold)
    # CRISPRoff weights the hybrid (1.0-2.25 per stack), so a GC-rich spacer binds far more strongly
    assert binding_energy("GGGCCCGGGCCCGGGCCCGG") < binding_energy("ATATTATAATTATAATATAT") - 10
    with pytest.raises(ValueError, match="20-nt spacer"):
        binding_energy("ACGT")
    g = guides_table(tmp_path / "g.tsv", n=5)
    values = compute_energies(g, tmp_path / "e.tsv")
    table = pd.read_csv(tmp_path / "e.tsv", sep="\t")
    assert len(table) == 5 and np.allclose(table.dg_bind, values, atol=1e-3)


@pytest.mark.parametrize("energy_after", [0, 1, 2, None])
def test_cnn_energy_joins_after_the_chosen_dense_layer(energy_after):
    import torch

    from omicslm.crispr.models import CNNRegressor

    torch.manual_seed(0)
    m = CNNRegressor(length=30, kernels=[3, 5], filters=[4, 3], dense=[8, 6], dropout=0.0, use_energy=True,
                     energy_after=energy_after).eval()
    x = torch.rand(5, 4, 30)
    y0, y1 = m(x, torch.zeros(5)), m(x, torch.full((5,), 3.0))
    assert y0.shape == (5,) and not torch.allclose(y0, y1)  # the energy reaches the output
    first = [mod for mod in m.modules() if isinstance(mod, torch.nn.Linear)]
    widths = [lin.in_features for lin in first]
    joined = 2 if energy_after is None else energy_after  # index of the layer that takes the energy
    assert widths[joined] == ([4 * 28 + 3 * 26, 8, 6][joined] + 1)
    with pytest.raises(ValueError, match="energy_after"):
        CNNRegressor(length=30, kernels=[3], filters=[4], dense=[8], dropout=0.0, use_energy=True, energy_after=2)


def test_pretraining_with_the_same_seed_gives_the_same_encoder(data, tmp_path):
    torch.manual_seed(99)  # the process's torch state must not decide the initial weights
    pretrain_encoder([data / "dna.fa"], tmp_path / "encoder", tmp_path / "work", train={**TRAIN, "max_epochs": 1},
                     **TINY)
    first = (tmp_path / "work" / "history.tsv").read_text().splitlines()[1].split("\t")[:3]
    torch.manual_seed(7)
    pretrain_encoder([data / "dna.fa"], tmp_path / "encoder2", tmp_path / "work2", train={**TRAIN, "max_epochs": 1},
                     **TINY)
    second = (tmp_path / "work2" / "history.tsv").read_text().splitlines()[1].split("\t")[:3]
    assert first == second
