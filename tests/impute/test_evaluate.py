"""Tests of imputation scoring: every metric on hand-computable examples, VCF reading, end to end."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pandas as pd
import pysam
import pytest

from omicslm.errors import InputError
from omicslm.impute import evaluate as ev
from omicslm.impute.evaluate import combine_tables, compare_methods, evaluate_method, paired_r2_difference, score
from omicslm.impute.imputed_vcf import read_imputed
from omicslm.impute.layout import FORMAT_VERSION, TYPE_NAMES
from omicslm.impute.plot import plot_r2_by_maf
from omicslm.io.vcf import write_vcf

BINS = [0.0, 0.005, 0.01, 0.05, 0.5]


def _row(df: pd.DataFrame, label: str) -> pd.Series:
    return df.loc[df["bin"] == label].iloc[0]


# --------------------------------------------------------------------------- score


def test_perfect_imputation_scores_one():
    truth = np.array([[0, 1, 2, 1, 0, 0], [0, 0, 1, 1, 0, 2]], dtype=np.int8)
    df = score(truth, truth.astype(np.float32), truth, np.array([0.3, 0.4]), bins=BINS, n_boot=50)
    row = _row(df, "[0.050,0.500]")
    assert row["n_sites"] == 2 and row["n_genotypes"] == 12
    for col in ("r2", "r2_lo", "r2_hi", "concordance", "nonref_concordance", "iqs", "minor_f1"):
        assert row[col] == pytest.approx(1.0), col
    assert row["mean_truth_maf"] == pytest.approx(0.35)
    assert _row(df, "all")["r2"] == pytest.approx(1.0)


def test_r2_hand_computed_and_zero_and_undefined():
    # x = (0,1,2,1), y = (0,1,2,2): Sxy = 2, Sxx = 2, Syy = 2.75 -> r2 = 4 / 5.5 = 8/11.
    truth = np.array([[0, 1, 2, 2]], dtype=np.int8)
    dosage = np.array([[0, 1, 2, 1]], dtype=np.float32)
    df = score(truth, dosage, dosage.astype(np.int8), np.array([0.3]), bins=BINS, n_boot=0)
    assert _row(df, "all")["r2"] == pytest.approx(8 / 11)
    assert np.isnan(_row(df, "all")["r2_lo"])  # no bootstrap asked

    # Uncorrelated: cov = 0 -> r2 exactly 0.
    truth = np.array([[0, 0, 1, 1]], dtype=np.int8)
    dosage = np.array([[0, 1, 0, 1]], dtype=np.float32)
    df = score(truth, dosage, truth, np.array([0.3]), bins=BINS, n_boot=20)
    assert _row(df, "all")["r2"] == pytest.approx(0.0)

    # The af_floor baseline at a single site: dosage = 2 * AF is constant -> variance 0 -> NaN,
    # while the genotype metrics are still defined.
    af = np.array([0.25])
    dosage = np.full((1, 4), 2 * af[0], dtype=np.float32)
    gt = np.zeros((1, 4), dtype=np.int8)
    df = score(truth, dosage, gt, af, bins=BINS, n_boot=20)
    row = _row(df, "all")
    assert np.isnan(row["r2"]) and np.isnan(row["r2_lo"]) and np.isnan(row["r2_hi"])
    assert row["concordance"] == pytest.approx(0.5)
    assert row["minor_f1"] == pytest.approx(0.0)


def test_iqs_concordance_f1_on_known_table():
    # gt x truth table (rows gt, columns truth): [[4,1,0],[1,2,1],[0,0,1]], n = 10.
    truth = np.array([[0, 0, 0, 0, 0, 1, 1, 1, 2, 2]], dtype=np.int8)
    gt = np.array([[0, 0, 0, 0, 1, 1, 1, 0, 2, 1]], dtype=np.int8)
    df = score(truth, gt.astype(np.float32), gt, np.array([0.2]), bins=BINS, n_boot=0)
    row = _row(df, "[0.050,0.500]")
    po, pc = 0.7, (5 * 5 + 4 * 3 + 1 * 2) / 100
    assert row["iqs"] == pytest.approx((po - pc) / (1 - pc))  # 0.31 / 0.61
    assert row["concordance"] == pytest.approx(0.7)
    assert row["nonref_concordance"] == pytest.approx(3 / 6)
    # TP = 5, FP = 1, FN = 2 allele copies.
    assert row["minor_f1"] == pytest.approx(10 / 13)


def test_iqs_skips_sites_with_chance_agreement_one():
    # Site 0: all calls 0 and all truth 0 -> Pc = 1 -> excluded; site 1: perfect -> IQS 1.
    truth = np.array([[0, 0, 0, 0], [0, 1, 2, 1]], dtype=np.int8)
    df = score(truth, truth.astype(float), truth, np.array([0.1, 0.3]), bins=[0.0, 0.5], n_boot=0)
    assert _row(df, "all")["iqs"] == pytest.approx(1.0)
    assert np.isnan(ev._site_iqs(truth[:1], truth[:1])[0])


def test_flip_to_minor_allele_when_panel_af_above_half():
    # ALT is the major allele (panel AF 0.9): the minor allele is REF.
    truth = np.array([[2, 2, 1, 2]], dtype=np.int8)
    gt = np.array([[2, 2, 2, 2]], dtype=np.int8)
    df = score(truth, gt.astype(np.float32), gt, np.array([0.9]), bins=[0.0, 0.05, 0.5], n_boot=0)
    row = _row(df, "[0.050,0.500]")
    assert row["n_sites"] == 1
    assert row["mean_truth_maf"] == pytest.approx(0.1)
    # Minor coding: truth (0,0,1,0), gt (0,0,0,0): the only carrier is missed.
    assert row["nonref_concordance"] == pytest.approx(0.0)  # 0.75 without the flip
    assert row["minor_f1"] == pytest.approx(0.0)  # 14/15 without the flip
    assert row["concordance"] == pytest.approx(0.75)
    # Dosage flips too: r2 is invariant to the flip, so compare with the unflipped score.
    dosage = np.array([[1.9, 1.8, 1.2, 2.0]])
    flipped = score(truth, dosage, gt, np.array([0.9]), bins=[0.0, 0.5], n_boot=0)
    plain = score(2 - truth, 2 - dosage, 2 - gt, np.array([0.1]), bins=[0.0, 0.5], n_boot=0)
    pd.testing.assert_frame_equal(flipped, plain)


def test_monomorphic_row_and_bin_edges():
    rng = np.random.default_rng(1)
    af = np.array([0.0, 1.0, 0.004, 0.005, 0.05, 0.5, 0.96])
    truth = rng.integers(0, 3, size=(len(af), 8)).astype(np.int8)
    df = score(truth, truth.astype(float), truth, af, bins=BINS, n_boot=0)
    assert df["bin"].tolist() == [
        "monomorphic", "[0.000,0.005)", "[0.005,0.010)", "[0.010,0.050)", "[0.050,0.500]", "all",
    ]
    counts = dict(zip(df["bin"], df["n_sites"]))
    assert counts["monomorphic"] == 2  # af 0 and af 1, never in the rarest bin
    assert counts["[0.000,0.005)"] == 1  # 0.004 only
    assert counts["[0.005,0.010)"] == 1  # 0.005: lower edge is closed
    assert counts["[0.010,0.050)"] == 1  # 0.96 -> MAF 0.04
    assert counts["[0.050,0.500]"] == 2  # 0.05 and 0.5: the last bin is closed
    assert counts["all"] == 5
    mono = _row(df, "monomorphic")
    assert mono["maf_lo"] == 0 and mono["maf_hi"] == 0 and mono["mean_truth_maf"] == 0


def test_empty_bin_kept_with_nan_metrics():
    truth = np.array([[0, 1, 2]], dtype=np.int8)
    df = score(truth, truth.astype(float), truth, np.array([0.3]), bins=BINS, n_boot=10)
    row = _row(df, "[0.000,0.005)")
    assert row["n_sites"] == 0 and row["n_genotypes"] == 0
    assert np.isnan(row["r2"]) and np.isnan(row["iqs"]) and np.isnan(row["concordance"])


def test_bootstrap_interval_contains_estimate_and_is_deterministic():
    rng = np.random.default_rng(0)
    n_sites, n_samp = 60, 30
    truth = rng.binomial(2, 0.3, size=(n_sites, n_samp)).astype(np.int8)
    dosage = np.clip(truth + rng.normal(0, 0.6, size=truth.shape), 0, 2)
    gt = np.rint(dosage).astype(np.int8)
    af = np.full(n_sites, 0.3)
    a = score(truth, dosage, gt, af, bins=BINS, n_boot=200, seed=3)
    b = score(truth, dosage, gt, af, bins=BINS, n_boot=200, seed=3)
    c = score(truth, dosage, gt, af, bins=BINS, n_boot=200, seed=4)
    pd.testing.assert_frame_equal(a, b)
    row = _row(a, "all")
    assert row["r2_lo"] < row["r2"] < row["r2_hi"]
    assert row["r2_hi"] - row["r2_lo"] < 0.3
    assert _row(c, "all")["r2_lo"] != row["r2_lo"]


def test_bootstrap_sufficient_statistics_match_naive_resampling():
    rng = np.random.default_rng(5)
    truth = rng.integers(0, 3, size=(12, 7)).astype(np.int8)
    dosage = np.clip(truth + rng.normal(0, 0.5, size=truth.shape), 0, 2)
    y = truth.astype(float)
    stats = np.stack([np.full(12, 7.0), dosage.sum(1), y.sum(1), (dosage**2).sum(1), (y**2).sum(1),
                      (dosage * y).sum(1)], axis=1)
    fast = ev._bootstrap_r2(stats, 25, np.random.default_rng(9))
    idx = np.random.default_rng(9).integers(0, 12, size=(25, 12))
    naive = [np.corrcoef(dosage[i].ravel(), y[i].ravel())[0, 1] ** 2 for i in idx]
    np.testing.assert_allclose(fast, naive, rtol=1e-10)


def test_paired_difference_matches_each_score_and_its_interval_separates_a_clear_gap():
    rng = np.random.default_rng(2)
    n_sites, n_samp = 80, 40
    af = rng.uniform(0.02, 0.98, n_sites)  # both codings: sites above .5 are flipped to the minor allele
    truth = rng.binomial(2, af[:, None], size=(n_sites, n_samp)).astype(np.int8)
    good = np.clip(truth + rng.normal(0, 0.2, size=truth.shape), 0, 2)
    bad = np.clip(truth + rng.normal(0, 0.8, size=truth.shape), 0, 2)
    diff = paired_r2_difference(truth, good, bad, af, bins=BINS, n_boot=300, seed=1)
    for dosage, col in ((good, "r2_a"), (bad, "r2_b")):
        single = score(truth, dosage, np.rint(dosage).astype(np.int8), af, bins=BINS, n_boot=0)
        np.testing.assert_allclose(diff[col], single["r2"], rtol=1e-12)  # same rows, same r2 (NaN where empty)
    assert diff["bin"].tolist() == score(truth, good, truth, af, bins=BINS, n_boot=0)["bin"].tolist()
    row = diff.set_index("bin").loc["all"]
    assert row["diff"] == pytest.approx(row["r2_a"] - row["r2_b"]) and 0 < row["diff_lo"] < row["diff"] < row["diff_hi"]
    # the same imputation on both sides: a zero difference, in every replicate
    same = paired_r2_difference(truth, good, good, af, bins=BINS, n_boot=50, seed=1).set_index("bin").loc["all"]
    assert same["diff"] == 0 and same["diff_lo"] == 0 and same["diff_hi"] == 0
    # the pairing: a small systematic gap is resolved though the two methods' own intervals overlap
    near = np.clip(good + rng.normal(0, 0.05, size=truth.shape), 0, 2)
    paired = paired_r2_difference(truth, good, near, af, bins=BINS, n_boot=300, seed=1).set_index("bin").loc["all"]
    own = score(truth, near, truth, af, bins=BINS, n_boot=300, seed=1).set_index("bin").loc["all"]
    assert paired["r2_a"] < own["r2_hi"] and paired["diff_lo"] > 0


def test_score_rejects_bad_input():
    t = np.zeros((2, 3), dtype=np.int8)
    with pytest.raises(ValueError, match="share one 2-D shape"):
        score(t, np.zeros((2, 2)), t, np.array([0.1, 0.2]), bins=BINS)
    with pytest.raises(ValueError, match="increasing"):
        score(t, t.astype(float), t, np.array([0.1, 0.2]), bins=[0.1, 0.05])
    with pytest.raises(ValueError, match="0/1/2"):
        score(t + 3, t.astype(float), t, np.array([0.1, 0.2]), bins=BINS)


# --------------------------------------------------------------------------- read_imputed


def _bgzip_text(path, text: str):
    plain = path.with_suffix("")
    plain.write_text(text)
    pysam.tabix_compress(str(plain), str(path), force=True)
    pysam.tabix_index(str(path), preset="vcf", force=True)
    return path


def test_read_imputed_write_vcf_ds_and_sample_reorder(tmp_path):
    hap = np.array([[[0, 0], [0, 1], [1, 1]], [[1, 0], [0, 0], [1, 1]], [[0, 0], [0, 0], [0, 1]]], dtype=np.int8)
    ds = np.array([[0.1, 0.9, 1.95], [1.2, 0.0, 1.5], [0.25, 0.0, 0.75]])
    vcf = write_vcf(tmp_path / "imp.vcf.gz", contig="20", positions=np.array([100, 200, 300]),
                    ref=["A", "C", "G"], alt=["G", "T", "A"], samples=["S1", "S2", "S3"],
                    haplotypes=hap, dosages=ds, genotype_probs=np.full((3, 3, 3), 1 / 3))
    dosage, gt = read_imputed(vcf, np.array([300, 100]), ["S3", "S1"], ref=["G", "A"], alt=["A", "G"])
    assert dosage.dtype == np.float32 and gt.dtype == np.int8
    np.testing.assert_allclose(dosage, [[0.75, 0.25], [1.95, 0.1]], atol=1e-6)
    np.testing.assert_array_equal(gt, [[1, 0], [2, 0]])


def test_read_imputed_hds_only_and_gt_only(tmp_path):
    text = (
        "##fileformat=VCFv4.2\n##contig=<ID=20>\n"
        '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">\n'
        '##FORMAT=<ID=HDS,Number=.,Type=Float,Description="Haploid dosages">\n'
        "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tX\tY\n"
        "20\t10\t.\tA\tC\t.\tPASS\t.\tGT:HDS\t0|1:0.1,0.7\t1|1:0.9,0.95\n"
        "20\t20\t.\tG\tT\t.\tPASS\t.\tGT\t1|0\t0|0\n"
    )
    vcf = _bgzip_text(tmp_path / "hds.vcf.gz", text)
    dosage, gt = read_imputed(vcf, np.array([10, 20]), ["Y", "X"])
    np.testing.assert_allclose(dosage, [[1.85, 0.8], [0.0, 1.0]], atol=1e-6)
    np.testing.assert_array_equal(gt, [[2, 1], [0, 1]])


def test_read_imputed_errors_name_file_and_record(tmp_path):
    hap = np.zeros((2, 2, 2), dtype=np.int8)
    vcf = write_vcf(tmp_path / "imp.vcf.gz", contig="20", positions=np.array([100, 200]), ref=["A", "C"],
                    alt=["G", "T"], samples=["S1", "S2"], haplotypes=hap, dosages=np.zeros((2, 2)))
    with pytest.raises(InputError, match=r"imp\.vcf\.gz.*pos:150.*absent") as err:
        read_imputed(vcf, np.array([100, 150]), ["S1"])
    assert err.value.path == str(vcf)
    with pytest.raises(InputError, match=r"record S9.*sample is absent"):
        read_imputed(vcf, np.array([100]), ["S1", "S9"])
    with pytest.raises(InputError, match=r"REF/ALT mismatch: expected C>A.*C>T"):
        read_imputed(vcf, np.array([100, 200]), ["S1"], ref=["A", "C"], alt=["G", "A"])
    with pytest.raises(InputError, match="cannot open"):
        read_imputed(tmp_path / "nope.vcf.gz", np.array([100]), ["S1"])


# --------------------------------------------------------------------------- end to end


def _write_panel(path, hap, pos, samples):
    """A tiny ingested panel following omicslm.impute.layout (format v1)."""
    n_var = len(pos)
    ref = np.array([b"A"] * n_var, dtype="S1")
    alt = np.array([b"G"] * n_var, dtype="S1")
    af = hap.mean(axis=(1, 2)).astype(np.float32)
    with h5py.File(path, "w") as f:
        f.attrs.update(format_version=FORMAT_VERSION, contig="20", source_vcf="test", min_maf=0.0,
                       type_names=TYPE_NAMES)
        f["variants/POS"] = np.asarray(pos, dtype=np.int64)
        f["variants/REF"], f["variants/ALT"] = ref, alt
        f["variants/ID"] = np.array([b"."] * n_var)
        f["variants/TYPE"] = np.full(n_var, TYPE_NAMES.index("A>G"), dtype=np.int8)
        f["variants/AF"] = af
        f["variants/AF_POP"] = af[:, None]
        f["variants/GENO_FREQ"] = np.zeros((n_var, 3), dtype=np.float32)
        f["calldata/HAP"] = hap
        f["samples/ID"] = np.array([s.encode() for s in samples])
        f["samples/POP"] = np.zeros(len(samples), dtype=np.int16)
        f["samples/SUPER_POP"] = np.array([b"EUR"] * len(samples))
        f["populations/NAME"] = np.array([b"CEU"])


@pytest.fixture
def panel_files(tmp_path):
    rng = np.random.default_rng(11)
    n_var, samples = 12, [f"S{i}" for i in range(10)]
    hap = (rng.random((n_var, len(samples), 2)) < rng.uniform(0.1, 0.9, size=(n_var, 1, 1))).astype(np.int8)
    hap[0] = 0  # monomorphic everywhere
    pos = np.arange(1, n_var + 1) * 1000
    h5 = tmp_path / "panel.h5"
    _write_panel(h5, hap, pos, samples)
    roles = ["reference"] * 5 + ["validation"] * 2 + ["test"] * 3
    split = tmp_path / "split.tsv"
    split.write_text("sample\tpop\tsuper_pop\trole\n"
                     + "".join(f"{s}\tCEU\tEUR\t{r}\n" for s, r in zip(samples, roles)))
    array_idx = [2, 5, 9]
    array = tmp_path / "array_sites.tsv"
    array.write_text("pos\tidx\n" + "".join(f"{pos[i]}\t{i}\n" for i in array_idx))
    return dict(h5=h5, split=split, array=array, hap=hap, pos=pos, samples=samples, array_idx=array_idx,
                test=samples[7:], panel=samples[:7])


def _runtime(path, method, seconds):
    path.write_text(json.dumps({"method": method, "seconds": seconds, "threads": 1}))
    return path


def test_evaluate_method_end_to_end(tmp_path, panel_files):
    p = panel_files
    test_hap = p["hap"][:, 7:, :]
    # Perfect imputation, output in another sample order and including the array sites.
    order = [2, 0, 1]
    perfect = write_vcf(tmp_path / "perfect.vcf.gz", contig="20", positions=p["pos"], ref=["A"] * 12,
                        alt=["G"] * 12, samples=[p["test"][k] for k in order], haplotypes=test_hap[:, order],
                        dosages=test_hap[:, order].sum(-1).astype(float))
    out = tmp_path / "eval" / "perfect.tsv"
    df = evaluate_method(p["h5"], p["split"], p["array"], perfect, _runtime(tmp_path / "rt.json", "perfect", 3.5),
                         out, method="perfect", bins=[0.0, 0.05, 0.5], n_boot=30, seed=0)
    assert list(df.columns) == ["method", *ev.COLUMNS, "seconds"]
    assert (df["method"] == "perfect").all() and (df["seconds"] == 3.5).all()
    panel_af = p["hap"][:, :7, :].mean(axis=(1, 2))
    scored = np.setdiff1d(np.arange(12), p["array_idx"])
    mono = (panel_af[scored] == 0) | (panel_af[scored] == 1)
    assert _row(df, "monomorphic")["n_sites"] == mono.sum() >= 1
    assert _row(df, "all")["n_sites"] == len(scored) - mono.sum()  # array sites are not scored
    assert _row(df, "all")["n_genotypes"] == (len(scored) - mono.sum()) * 3
    assert _row(df, "all")["r2"] == pytest.approx(1.0)
    assert _row(df, "all")["mean_truth_maf"] == pytest.approx(np.minimum(panel_af, 1 - panel_af)[scored][~mono].mean())
    back = pd.read_csv(out, sep="\t")
    pd.testing.assert_frame_equal(back, df, check_dtype=False, atol=1e-7)
    assert not [f for f in out.parent.iterdir() if f.name.startswith(".")]  # no temp file left

    # af_floor baseline, written only at the scored sites: dosage = 2 * panel AF.
    floor_ds = np.repeat(2 * panel_af[scored, None], 3, axis=1)
    floor = write_vcf(tmp_path / "floor.vcf.gz", contig="20", positions=p["pos"][scored], ref=["A"] * len(scored),
                      alt=["G"] * len(scored), samples=p["test"], haplotypes=np.zeros((len(scored), 3, 2), np.int8),
                      dosages=floor_ds)
    df2 = evaluate_method(p["h5"], p["split"], p["array"], floor, _runtime(tmp_path / "rt2.json", "af_floor", 0.1),
                          tmp_path / "eval" / "floor.tsv", method="af_floor", bins=[0.0, 0.05, 0.5], n_boot=30, seed=0)
    assert _row(df2, "all")["r2"] < 0.5
    paired = compare_methods(p["h5"], p["split"], p["array"], perfect, floor, bins=[0.0, 0.05, 0.5], n_boot=30,
                             seed=0).set_index("bin")
    assert paired.loc["all", "r2_a"] == pytest.approx(1.0)
    assert paired.loc["all", "r2_b"] == pytest.approx(_row(df2, "all")["r2"])

    combined = combine_tables([out, tmp_path / "eval" / "floor.tsv"], tmp_path / "results" / "impute_eval.tsv")
    assert combined["method"].tolist().count("perfect") == len(df)
    assert pd.read_csv(tmp_path / "results" / "impute_eval.tsv", sep="\t")["method"].unique().tolist() == [
        "perfect", "af_floor"]

    png = tmp_path / "plots" / "r2.png"
    plot_r2_by_maf(tmp_path / "results" / "impute_eval.tsv", png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000


def test_evaluate_method_missing_scored_site_is_an_error(tmp_path, panel_files):
    p = panel_files
    keep = np.array([i for i in range(12) if i != 4])  # site 4 is scored (not on the array)
    vcf = write_vcf(tmp_path / "partial.vcf.gz", contig="20", positions=p["pos"][keep], ref=["A"] * 11,
                    alt=["G"] * 11, samples=p["test"], haplotypes=p["hap"][keep][:, 7:])
    with pytest.raises(InputError, match=rf"partial\.vcf\.gz.*:{p['pos'][4]}.*absent"):
        evaluate_method(p["h5"], p["split"], p["array"], vcf, _runtime(tmp_path / "rt.json", "x", 1.0),
                        tmp_path / "x.tsv", method="x", bins=BINS, n_boot=0, seed=0)
    assert not (tmp_path / "x.tsv").exists()


def test_evaluate_method_rejects_inconsistent_array_sites(tmp_path, panel_files):
    p = panel_files
    bad = tmp_path / "bad_array.tsv"
    bad.write_text(f"pos\tidx\n{p['pos'][3] + 1}\t3\n")
    with pytest.raises(InputError, match=r"bad_array\.tsv.*does not match variants/POS"):
        evaluate_method(p["h5"], p["split"], bad, tmp_path / "none.vcf.gz", tmp_path / "none.json",
                        tmp_path / "x.tsv", method="x", bins=BINS, n_boot=0, seed=0)


def test_combine_tables_keys_the_targets_tables_by_chromosome_too(tmp_path):
    row = {"method": "beagle", "bin": "all", "r2": 0.9}
    a, b = tmp_path / "a.tsv", tmp_path / "b.tsv"
    pd.DataFrame([{**row, "chrom": "21"}]).to_csv(a, sep="\t", index=False)
    pd.DataFrame([{**row, "chrom": "22"}]).to_csv(b, sep="\t", index=False)
    combined = combine_tables([a, b], tmp_path / "all.tsv")
    assert list(combined["chrom"].astype(str)) == ["21", "22"]
    with pytest.raises(InputError, match="method/chrom/bin appears in two"):
        combine_tables([a, a], tmp_path / "twice.tsv")
    assert not (tmp_path / "twice.tsv").exists()
