import copy
import json
import shutil
import subprocess
import sys

import cyvcf2
import numpy as np
import pandas as pd
import pytest
from safetensors import safe_open

from omicslm.errors import InputError
from omicslm.impute.evaluate import evaluate_method
from omicslm.impute.ragbert.windows import write_windows
from omicslm.impute.ragbert.train import resolve_variant, train_ragbert
from omicslm.impute.ragbert.predict import impute_ragbert
from omicslm.impute.split import select_array_sites, split_samples, write_target_vcf
from omicslm.io.vcf import write_vcf
from tests.impute.h5fixture import make_panel_h5

MODEL = {
    "enabled": True,
    "variants": {"ragbert": {}, "ragbert_noretrieval": {"retrieval": False}},
    "hidden": 16, "layers": 1, "heads": 2, "intermediate": 32, "dropout": 0.0, "retrieval": True,
    "pooling": "attention", "k": 2, "max_inv_maf": 10.0, "residual_scale": 0.1, "ref_chunk": 64,
    "ref_grad": False, "ref_checkpointing": True, "query_flank_sites": 4,
    "copying": {"enabled": True, "candidates": 6, "flank_sites": 16, "ne": 1e4, "cm_per_mb": 1.0, "error": 1e-3, "prior_clip": 1e-4},
    "retrieval_index": {"ivf_min_haplotypes": 10_000, "nlist": 4, "nprobe": 2},
    "loss": {"allele": 1.0, "genotype": 0.5, "reconstruction": 0.5, "focal_gamma": 0.0},
    "batch_size": 32, "pairs_per_epoch": None, "reveal_start": 0.3, "curriculum_epochs": 1, "prob_eps": 1e-6,
    "threads": 1, "resources": {"gpu": 0},
    "train": {"max_epochs": 2, "lr": 1e-2, "warmup_steps": 1, "patience": 2, "checkpoint_every_steps": 1,
              "early_stopping_metric": "val_r2_all", "early_stopping_mode": "max", "seed": 0, "device": "cpu"},
}
BINS = [0.0, 0.05, 0.5]


def _mosaic_haplotypes(n_var, n_samp, n_founders=6, seed=0):
    """Haplotypes copied from a few founders with switches: retrieval has something to find."""
    rng = np.random.default_rng(seed)
    founders = (rng.random((n_var, n_founders)) < rng.uniform(0.05, 0.5, n_var)[:, None]).astype(np.int8)
    hap = np.empty((n_var, n_samp, 2), np.int8)
    for s in range(n_samp):
        for h in range(2):
            src = rng.integers(n_founders)
            for v in range(n_var):
                if rng.random() < 0.02:
                    src = rng.integers(n_founders)
                hap[v, s, h] = founders[v, src]
    return hap


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    d = tmp_path_factory.mktemp("rag")
    hap = _mosaic_haplotypes(96, 40)
    pops = ["A"] * 20 + ["B"] * 20
    h5 = make_panel_h5(d / "panel.h5", hap, pops=pops)
    split_samples(h5, d / "split.tsv", test_fraction=0.2, validation_fraction=0.15, seed=1)
    select_array_sites(h5, d / "split.tsv", d / "array.tsv", manifest=None, min_maf=0.05, spacing_bp=3000)
    write_windows(h5, d / "windows.tsv", sites=24, overlap=8)
    write_target_vcf(h5, d / "split.tsv", d / "array.tsv", d / "targets.vcf.gz")
    return {"dir": d, "h5": h5, "split": d / "split.tsv", "array": d / "array.tsv", "windows": d / "windows.tsv",
            "targets": d / "targets.vcf.gz", "hap": hap}


def _train(inp, out, variant="ragbert", model=MODEL, **kw):
    return train_ragbert(inp["h5"], inp["split"], inp["array"], inp["windows"], out_dir=out / "model",
                         work_dir=out / "work", variant=variant, model_block=model, maf_bins=BINS, threads=1, **kw)


@pytest.fixture(scope="module")
def trained(inputs, tmp_path_factory):
    out = tmp_path_factory.mktemp("trained")
    state = _train(inputs, out)
    return out, state


def test_train_then_impute_writes_a_vcf_that_tools_read_and_evaluate_scores(inputs, trained, tmp_path):
    out, state = trained
    assert state["epochs_run"] == 2 and (out / "model" / "best" / "model.safetensors").is_file()
    hist = (out / "model" / "history.tsv").read_text().splitlines()
    assert len(hist) == 3 and "val_r2_all" in hist[0] and "val_minor_f1" in hist[0]
    assert json.loads((out / "model" / "train_runtime.json").read_text())["train_seconds"] > 0

    vcf = tmp_path / "imputed.vcf.gz"
    impute_ragbert(inputs["h5"], inputs["split"], inputs["targets"], inputs["windows"], out / "model" / "best", vcf,
                   tmp_path / "runtime.json", method="ragbert", batch_size=32, threads=1, device="cpu",
                   train_runtime_json=out / "model" / "train_runtime.json")
    runtime = json.loads((tmp_path / "runtime.json").read_text())
    assert runtime["method"] == "ragbert" and runtime["seconds"] > 0 and runtime["train_seconds"] > 0
    view = subprocess.run(["bcftools", "view", "-H", str(vcf)], capture_output=True, text=True, check=True)
    assert len(view.stdout.splitlines()) == 96

    targets = cyvcf2.VCF(str(inputs["targets"]))
    test_samples = targets.samples
    observed = {rec.POS: rec.genotype.array()[:, :2] for rec in targets}
    reader = cyvcf2.VCF(str(vcf))
    assert reader.samples == test_samples
    n = 0
    for rec in reader:
        ds = rec.format("DS")[:, 0]
        gp = rec.format("GP")
        assert ((ds >= 0) & (ds <= 2)).all()
        np.testing.assert_allclose(gp.sum(1), 1, atol=2e-3)
        np.testing.assert_allclose(gp[:, 1] + 2 * gp[:, 2], ds, atol=3e-3)
        hds = rec.format("HDS")  # each haplotype's ALT dose, in GT's order, summing to DS
        np.testing.assert_allclose(hds.sum(1), ds, atol=2e-3)
        gt = rec.genotype.array()[:, :2].astype(bool)  # the ALT allele where its dose is >= .5 (HDS has 3 decimals)
        assert (gt[hds > 0.5005]).all() and not gt[hds < 0.4995].any()
        assert 0 <= rec.INFO["R2"] <= 1 and 0 <= rec.INFO["AF"] <= 1
        if rec.POS in observed:  # array sites carry the observed genotypes, flagged TYPED
            np.testing.assert_array_equal(rec.genotype.array()[:, :2], observed[rec.POS])
            assert rec.INFO.get("TYPED") is True and rec.INFO.get("IMP") is None
        else:
            assert rec.INFO.get("IMP") is True and rec.INFO.get("TYPED") is None
        n += 1
    assert n == 96

    table = evaluate_method(inputs["h5"], inputs["split"], inputs["array"], vcf, tmp_path / "runtime.json",
                            tmp_path / "eval.tsv", method="ragbert", bins=BINS, n_boot=10, seed=0)
    # 2 tiny epochs: well above the 0 of an uninformed (constant) dosage, not a quality claim
    assert table.loc[table["bin"] == "all", "r2"].iloc[0] > 0.1


def test_ablation_trains_without_retrieval(inputs, tmp_path):
    model = copy.deepcopy(MODEL)
    model["train"]["max_epochs"] = 1
    state = _train(inputs, tmp_path, variant="ragbert_noretrieval", model=model)
    cfg = json.loads((tmp_path / "model" / "best" / "config.json").read_text())
    assert state["epochs_run"] == 1 and cfg["model"]["retrieval"] is False
    with safe_open(tmp_path / "model" / "best" / "model.safetensors", framework="pt") as fh:
        names = list(fh.keys())
    assert names and not any(k.startswith(("fusion.", "copy_")) for k in names)
    assert cfg["model"]["copying"] is False  # the copying model needs retrieved candidates: off with retrieval


def test_imputing_with_another_genetic_map_than_training_is_a_clear_error(inputs, trained, tmp_path):
    out, _ = trained
    gmap = tmp_path / "map.plink.map"
    gmap.write_text("1 . 0.0 1\n1 . 5.0 1000000\n")
    with pytest.raises(InputError, match="trained with none, this run gives .*map.plink.map"):
        impute_ragbert(inputs["h5"], inputs["split"], inputs["targets"], inputs["windows"], out / "model" / "best",
                       tmp_path / "x.vcf.gz", tmp_path / "rt.json", method="ragbert", batch_size=32, threads=1,
                       device="cpu", genetic_map=gmap)
    assert not (tmp_path / "x.vcf.gz").exists()


def test_copying_ablation_is_the_same_model_without_the_prior(inputs, trained, tmp_path):
    out, _ = trained
    full = json.loads((out / "model" / "best" / "config.json").read_text())
    assert full["model"]["copying"] is True and full["model"]["copy_prior_clip"] == 1e-4
    with safe_open(out / "model" / "best" / "model.safetensors", framework="pt") as fh:
        assert {"copy_scale", "copy_proj.weight"} <= set(fh.keys())
    model = copy.deepcopy(MODEL)
    model["train"]["max_epochs"] = 1
    model["variants"] = {"ragbert_nocopying": {"copying": {"enabled": False}}}
    _train(inputs, tmp_path, variant="ragbert_nocopying", model=model)
    cfg = json.loads((tmp_path / "model" / "best" / "config.json").read_text())
    assert cfg["model"]["copying"] is False and cfg["model"]["retrieval"] is True
    assert cfg["options"]["copying"]["candidates"] == 6  # the rest of the block is kept


def test_killed_training_resumes_from_last_checkpoint(inputs, tmp_path):
    calls = []

    def crash_after_three(epoch):
        calls.append(epoch)
        if len(calls) == 4:  # batches 1..3 stepped and checkpointed (checkpoint_every_steps=1)
            raise KeyboardInterrupt("simulated kill")

    with pytest.raises(KeyboardInterrupt):
        _train(inputs, tmp_path, loss_hook=crash_after_three)
    assert (tmp_path / "work" / "last").is_dir() and not (tmp_path / "model" / "best").exists()
    resumed = []
    state = _train(inputs, tmp_path, loss_hook=resumed.append)
    n_windows = len(inputs["windows"].read_text().splitlines()) - 1
    n_ref = inputs["split"].read_text().count("\treference")
    per_epoch = -(-n_windows * n_ref // (MODEL["batch_size"] // 2))  # every (window, sample) pair, 16 per batch
    assert state["global_step"] == 2 * per_epoch
    assert len(resumed) == 2 * per_epoch - 3  # only the batches after the last checkpoint ran again
    assert resumed[0] == 0  # continued inside the first epoch, not restarted
    assert (tmp_path / "model" / "best" / "model.safetensors").is_file()


def test_checkpoint_from_another_panel_is_rejected(inputs, trained, tmp_path):
    out, _ = trained
    other = make_panel_h5(tmp_path / "other.h5", _mosaic_haplotypes(90, 40, seed=2), pops=["A"] * 20 + ["B"] * 20)
    write_windows(other, tmp_path / "w.tsv", sites=24, overlap=8)
    with pytest.raises(InputError, match=r"config.json: checkpoint was trained on another panel \(n_sites: "
                                         r"checkpoint 96 vs panel 90"):
        impute_ragbert(other, inputs["split"], inputs["targets"], tmp_path / "w.tsv", out / "model" / "best",
                       tmp_path / "x.vcf.gz", tmp_path / "r.json", method="ragbert", batch_size=8)
    assert not (tmp_path / "x.vcf.gz").exists() and not (tmp_path / "r.json").exists()


def test_target_site_not_in_panel_is_rejected(inputs, trained, tmp_path):
    out, _ = trained
    bad = tmp_path / "bad.vcf.gz"
    write_vcf(bad, contig="21", positions=np.array([1000, 1500]), ref=["A", "A"], alt=["G", "G"], samples=["S000"],
              haplotypes=np.zeros((2, 1, 2), np.int8))
    with pytest.raises(InputError, match=r"bad.vcf.gz, record 21:1500: target site is not a site of the reference"):
        impute_ragbert(inputs["h5"], inputs["split"], bad, inputs["windows"], out / "model" / "best",
                       tmp_path / "x.vcf.gz", tmp_path / "r.json", method="ragbert", batch_size=8)
    assert not (tmp_path / "x.vcf.gz").exists()


def test_k_larger_than_panel_is_a_clear_error_before_training(inputs, tmp_path):
    model = copy.deepcopy(MODEL)
    model["k"] = 500
    with pytest.raises(InputError, match=r"impute.model.k: K=500 nearest haplotypes requested but the panel has"):
        _train(inputs, tmp_path, model=model)
    assert not (tmp_path / "model").exists() and not (tmp_path / "work").exists()


def test_resolve_variant_applies_overrides():
    block = {**MODEL, "variants": {"a": {"pooling": "mean", "loss": {"focal_gamma": 2.0}, "enabled": True}, "b": None}}
    a = resolve_variant(block, "a")
    assert a["pooling"] == "mean" and a["loss"]["focal_gamma"] == 2.0 and a["loss"]["allele"] == 1.0
    assert "variants" not in a and "resources" not in a and MODEL["loss"]["focal_gamma"] == 0.0
    assert "enabled" not in a  # whether the workflow runs a variant is not a model key
    assert resolve_variant(block, "b")["pooling"] == "attention"
    with pytest.raises(ValueError, match="unknown model variant 'c'"):
        resolve_variant(block, "c")


def test_training_curves_plot(trained, tmp_path):
    from omicslm.impute.ragbert.plot import plot_training_curves

    out, _ = trained
    png = tmp_path / "curves.png"
    plot_training_curves({"ragbert": out / "model" / "history.tsv"}, png, metric="val_r2_all")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    bad = tmp_path / "h.tsv"
    bad.write_text("epoch\ttrain_loss\n0\t1.0\n")
    with pytest.raises(InputError, match=r"h.tsv: training history lacks column\(s\) \['val_loss', 'val_r2_all'\]"):
        plot_training_curves({"x": bad}, tmp_path / "x.png", metric="val_r2_all")
    assert not (tmp_path / "x.png").exists()


def test_hdf5_missing_a_field_is_a_clear_error(inputs, tmp_path):
    import h5py

    broken = tmp_path / "broken.h5"
    shutil.copyfile(inputs["h5"], broken)
    with h5py.File(broken, "a") as f:
        del f["variants/GENO_FREQ"]
    with pytest.raises(InputError, match=r"broken.h5: HDF5 is missing dataset 'variants/GENO_FREQ'"):
        train_ragbert(broken, inputs["split"], inputs["array"], inputs["windows"], out_dir=tmp_path / "m",
                      work_dir=tmp_path / "w", variant="ragbert", model_block=MODEL, maf_bins=BINS)
    assert not (tmp_path / "m").exists()


def test_copying_candidates_can_have_their_own_retrieval_query(inputs, tmp_path):
    model = copy.deepcopy(MODEL)
    model["train"]["max_epochs"] = 1
    model["copying"].update(candidates=500, query_flank_sites=32, query_decay_sites=8.0)  # capped at the panel
    state = _train(inputs, tmp_path, model=model)
    cfg = json.loads((tmp_path / "model" / "best" / "config.json").read_text())
    assert state["epochs_run"] == 1 and cfg["options"]["copying"]["query_flank_sites"] == 32
    assert cfg["model"]["k"] == 2  # the fused neighbours keep K


FRESH_COPYING_ONLY = """
import json, sys
from omicslm.impute.ragbert.predict import impute_ragbert
impute_ragbert(*sys.argv[1:8], method="ragbert_copying_only", batch_size=32, threads=1, device="cpu")
print(json.dumps(sorted(m for m in ("torch", "transformers") if m in sys.modules)))
"""


def _records(vcf) -> list[str]:
    """The body of a VCF (its records), as text."""
    view = subprocess.run(["bcftools", "view", "-H", str(vcf)], capture_output=True, text=True, check=True)
    return view.stdout.split("\n")


def test_copying_only_variant_trains_nothing_and_imputes_with_the_copying_model(inputs, tmp_path):
    model = copy.deepcopy(MODEL)
    model["variants"] = {"ragbert_copying_only": {"network": False}}
    model["copying"].update(states="slots", slots=8)  # the default state model, fewer slots than the panel
    state = _train(inputs, tmp_path, variant="ragbert_copying_only", model=model)
    best = tmp_path / "model" / "best"
    assert not (best / "model.safetensors").exists() and (best / "config.json").is_file()
    runtime = json.loads((tmp_path / "model" / "train_runtime.json").read_text())
    assert runtime["train_seconds"] == 0 and runtime["network"] is False
    hist = pd.read_csv(tmp_path / "model" / "history.tsv", sep="\t")
    assert len(hist) == 1 and hist["val_r2_all"].iloc[0] == pytest.approx(state["best_metric"])
    vcf = tmp_path / "imputed.vcf.gz"
    impute_ragbert(inputs["h5"], inputs["split"], inputs["targets"], inputs["windows"], best, vcf,
                   tmp_path / "runtime.json", method="ragbert_copying_only", batch_size=32, threads=1, device="cpu")
    table = evaluate_method(inputs["h5"], inputs["split"], inputs["array"], vcf, tmp_path / "runtime.json",
                            tmp_path / "eval.tsv", method="ragbert_copying_only", bins=BINS, n_boot=10, seed=0)
    assert table.loc[table["bin"] == "all", "r2"].iloc[0] > 0.3
    # a fresh process imputes the same without importing torch or transformers (no network to run)
    fresh = tmp_path / "fresh.vcf.gz"
    args = [inputs["h5"], inputs["split"], inputs["targets"], inputs["windows"], best, fresh, tmp_path / "rt2.json"]
    res = subprocess.run([sys.executable, "-c", FRESH_COPYING_ONLY, *map(str, args)], capture_output=True, text=True,
                         check=True)
    assert json.loads(res.stdout.strip().splitlines()[-1]) == []
    assert _records(fresh) == _records(vcf)
    few = copy.deepcopy(model)
    few["copying"]["slots"] = 4  # fewer slots than candidates per window (6)
    with pytest.raises(InputError, match="copying.slots.*4 slots are fewer than the 6 candidates"):
        _train(inputs, tmp_path / "few", variant="ragbert_copying_only", model=few)
    bad = copy.deepcopy(model)
    bad["variants"] = {"ragbert_x": {"network": False, "copying": {"enabled": False}}}
    with pytest.raises(ValueError, match="needs copying.enabled"):
        _train(inputs, tmp_path / "bad", variant="ragbert_x", model=bad)


def test_skip_confident_runs_the_network_only_where_the_copying_model_is_unsure(inputs, trained, tmp_path,
                                                                                 monkeypatch):
    import torch
    from omicslm.impute.ragbert import predict as pred
    from omicslm.impute.ragbert.predict import confident_pairs

    out, _ = trained
    real, seen = pred.predict_alt_prob, {}

    def spy(model, data, **kw):
        seen["model"], seen["data"] = model, data
        return real(model, data, **kw)

    monkeypatch.setattr(pred, "predict_alt_prob", spy)
    impute_ragbert(inputs["h5"], inputs["split"], inputs["targets"], inputs["windows"], out / "model" / "best",
                   tmp_path / "x.vcf.gz", tmp_path / "rt.json", method="ragbert", batch_size=32, threads=1,
                   device="cpu", skip_confident=0.01)
    model, data = seen["model"], seen["data"]
    rows = []
    model.register_forward_hook(lambda m, a, o: rows.append(len(o[0]) if isinstance(o, tuple) else len(o)))
    kw = dict(batch_size=32, device=torch.device("cpu"), amp=False)
    network = real(model, data, **kw)
    n_pairs = len(data.items())
    assert sum(rows) > 0
    # every probability is within .5 of 0 or 1: the network never runs, the answer is the copying model's
    rows.clear()
    np.testing.assert_allclose(real(model, data, skip_confident=0.5, **kw), data.copy_prob, atol=1e-6)
    assert sum(rows) == 0
    # in between: the copying model where a window's pair is sure, the network where it is not
    untyped, n_samp = ~np.asarray(data.observed, bool), data.query_hap.shape[1] // 2
    doubt = np.zeros((len(data.windows), n_samp))  # a pair's largest distance from 0 or 1 at an untyped site
    for w, (s, e) in enumerate(data.windows):
        p = data.copy_prob[s:e][untyped[s:e]]
        doubt[w] = np.minimum(p, 1 - p).max(axis=0, initial=0.0).reshape(n_samp, 2).max(axis=1)
    within = float(np.median(doubt[doubt > 0]))
    sure = confident_pairs(data, within)
    assert 0 < sure.sum() < sure.size
    np.testing.assert_array_equal(sure, doubt <= within)
    mixed = real(model, data, skip_confident=within, **kw)
    checked = set()
    for w, (s, e) in enumerate(data.windows):
        solo = np.ones(e - s, bool)  # sites of window w that no other window covers
        for v, (s2, e2) in enumerate(data.windows):
            if v != w and s2 < e and s < e2:
                solo[max(s2, s) - s:min(e2, e) - s] = False
        for j in range(n_samp):
            ref = data.copy_prob if sure[w, j] else network
            cols = [2 * j, 2 * j + 1]
            np.testing.assert_allclose(mixed[s:e][solo][:, cols], ref[s:e][solo][:, cols], atol=1e-5)
            if solo.any():
                checked.add(bool(sure[w, j]))
    assert checked == {True, False}
    assert n_pairs == sure.size


def test_training_queries_are_a_seeded_subset_of_the_reference_in_panel_order():
    from omicslm.impute.ragbert.train import training_queries

    ref = np.array([3, 5, 8, 9, 12, 20, 21])
    assert training_queries(ref, None, seed=0) is ref and training_queries(ref, 7, seed=0) is ref
    some = training_queries(ref, 4, seed=0)
    assert len(some) == 4 and set(some) <= set(ref) and list(some) == sorted(some)
    np.testing.assert_array_equal(some, training_queries(ref, 4, seed=0))
    assert any(not np.array_equal(some, training_queries(ref, 4, seed=s)) for s in range(1, 6))


def test_a_subset_of_training_queries_never_retrieves_its_own_or_its_partners_haplotype(inputs):
    from omicslm.impute.layout import read_panel
    from omicslm.impute.ragbert.windows import haplotype_columns, read_windows, window_data
    from omicslm.impute.split import read_split, role_indices

    panel = read_panel(inputs["h5"])
    ref = role_indices(panel, read_split(inputs["split"]), ["reference"])
    query = ref[1::3]  # every third reference sample
    observed = np.zeros(panel.n_variants, bool)
    observed[::3] = True
    cfg = resolve_variant(MODEL, "ragbert")
    data = window_data(panel, read_windows(inputs["windows"], panel.n_variants), observed,
                       query_hap=haplotype_columns(panel.hap, query), labels=True, panel_idx=ref, cfg=cfg,
                       exclude_self=True, seed=0, threads=1, window_sites=24, query_idx=query)
    assert data.neighbours.shape[1] == 2 * len(query)
    own = 2 * np.searchsorted(ref, query)  # the panel columns of each query sample's first haplotype
    for j in range(2 * len(query)):
        taken = set(data.neighbours[:, j, :].ravel())
        assert not taken & {own[j // 2], own[j // 2] + 1}, f"query haplotype {j} retrieved itself or its partner"
    with pytest.raises(ValueError, match="not a panel sample"):
        window_data(panel, read_windows(inputs["windows"], panel.n_variants), observed,
                    query_hap=haplotype_columns(panel.hap, query), labels=True, panel_idx=ref[2:], cfg=cfg,
                    exclude_self=True, seed=0, threads=1, window_sites=24, query_idx=query)


def test_training_takes_its_queries_from_the_subset_and_validates_as_it_imputes(inputs, tmp_path, monkeypatch):
    from omicslm.impute.ragbert import train as tr

    model = copy.deepcopy(MODEL)
    model["train"]["max_epochs"] = 1
    model.update(train_query_samples=5, val_skip_confident=0.02, val_batch_size=48)
    made, calls = [], []
    real_data, real_predict = tr.window_data, tr.predict_alt_prob
    monkeypatch.setattr(tr, "window_data", lambda *a, **kw: made.append(kw) or real_data(*a, **kw))
    monkeypatch.setattr(tr, "predict_alt_prob", lambda *a, **kw: calls.append(kw) or real_predict(*a, **kw))
    _train(inputs, tmp_path, model=model)
    train_kw = next(kw for kw in made if kw["labels"])
    assert len(train_kw["query_idx"]) == 5 and train_kw["query_hap"].shape[1] == 10
    assert len(train_kw["panel_idx"]) > 5  # retrieved against every reference sample
    assert calls and all(kw["skip_confident"] == 0.02 and kw["batch_size"] == 48 for kw in calls)
