import cyvcf2
import numpy as np
import pandas as pd
import pytest

from omicslm.errors import InputError
from omicslm.impute.split import (
    panel_alt_frequency,
    read_split,
    select_array_sites,
    split_samples,
    write_panel_vcf,
    write_target_vcf,
)
from tests.impute.h5fixture import make_panel_h5


@pytest.fixture
def panel_h5(tmp_path):
    rng = np.random.default_rng(3)
    n_var, n_samp = 200, 40
    hap = (rng.random((n_var, n_samp, 2)) < rng.uniform(0.01, 0.6, (n_var, 1, 1))).astype(np.int8)
    pops = ["AAA"] * 20 + ["BBB"] * 12 + ["CCC"] * 8
    return make_panel_h5(tmp_path / "panel.h5", hap, pos=np.arange(n_var) * 500 + 1000, pops=pops), hap


def test_split_is_stratified_seeded_and_complete(panel_h5, tmp_path):
    h5, _ = panel_h5
    df = split_samples(h5, tmp_path / "split.tsv", test_fraction=0.25, validation_fraction=0.25, seed=1)
    counts = df.groupby(["pop", "role"]).size().unstack(fill_value=0)
    assert counts.loc["AAA", "test"] == 5 and counts.loc["BBB", "test"] == 3 and counts.loc["CCC", "test"] == 2
    assert counts.loc["AAA", "validation"] == 5 and counts.loc["CCC", "reference"] == 4
    assert len(df) == 40 and df["sample"].is_unique
    again = split_samples(h5, tmp_path / "split2.tsv", test_fraction=0.25, validation_fraction=0.25, seed=1)
    pd.testing.assert_frame_equal(df, again)
    other = split_samples(h5, tmp_path / "split3.tsv", test_fraction=0.25, validation_fraction=0.25, seed=2)
    assert not df.role.equals(other.role)
    pd.testing.assert_frame_equal(read_split(tmp_path / "split.tsv"), df.astype(str))


def test_split_rejects_fractions_leaving_no_reference(panel_h5, tmp_path):
    h5, _ = panel_h5
    with pytest.raises(ValueError, match="no reference"):
        split_samples(h5, tmp_path / "s.tsv", test_fraction=0.6, validation_fraction=0.4, seed=0)
    assert not (tmp_path / "s.tsv").exists()


def test_read_split_names_bad_roles(tmp_path):
    p = tmp_path / "split.tsv"
    p.write_text("sample\tpop\tsuper_pop\trole\nS1\tA\tX\ttrain\n")
    with pytest.raises(InputError, match=r"split.tsv, record S1: role 'train' is not one of"):
        read_split(p)


def test_density_rule_uses_panel_maf_and_spacing(panel_h5, tmp_path):
    h5, hap = panel_h5
    split = split_samples(h5, tmp_path / "split.tsv", test_fraction=0.25, validation_fraction=0.1, seed=1)
    arr = select_array_sites(h5, tmp_path / "split.tsv", tmp_path / "array.tsv", min_maf=0.1, spacing_bp=1200)
    panel_idx = np.flatnonzero(split.role.isin(["reference", "validation"]).to_numpy())
    af = panel_alt_frequency(hap, panel_idx)
    maf = np.minimum(af, 1 - af)
    assert (maf[arr.idx] >= 0.1).all()
    windows = arr.pos.to_numpy() // 1200
    assert (np.diff(windows) > 0).all(), "at most one array site per 1200 bp window"
    # every window that has an eligible site contributes its first eligible site
    eligible = np.flatnonzero(maf >= 0.1)
    expected = [i for k, i in enumerate(eligible) if k == 0 or (1000 + 500 * i) // 1200 != (1000 + 500 * eligible[k - 1]) // 1200]
    assert arr.idx.tolist() == expected


def test_manifest_overrides_density_rule(panel_h5, tmp_path):
    h5, _ = panel_h5
    split_samples(h5, tmp_path / "split.tsv", test_fraction=0.25, validation_fraction=0.1, seed=1)
    man = tmp_path / "chip.txt"
    man.write_text("pos\n1500\n3000\n999999\n")
    arr = select_array_sites(h5, tmp_path / "split.tsv", tmp_path / "array.tsv", manifest=man, min_maf=0.1, spacing_bp=1)
    assert arr.pos.tolist() == [1500, 3000] and arr.idx.tolist() == [1, 4]
    man.write_text("5\n7\n")
    with pytest.raises(InputError, match="no array sites"):
        select_array_sites(h5, tmp_path / "split.tsv", tmp_path / "array2.tsv", manifest=man, min_maf=0.1, spacing_bp=1)
    assert not (tmp_path / "array2.tsv").exists()


def test_panel_and_target_vcfs_hold_the_right_samples_and_sites(panel_h5, tmp_path):
    h5, hap = panel_h5
    split = split_samples(h5, tmp_path / "split.tsv", test_fraction=0.25, validation_fraction=0.1, seed=1)
    arr = select_array_sites(h5, tmp_path / "split.tsv", tmp_path / "array.tsv", min_maf=0.05, spacing_bp=2000)
    write_panel_vcf(h5, tmp_path / "split.tsv", tmp_path / "panel.vcf.gz")
    write_target_vcf(h5, tmp_path / "split.tsv", tmp_path / "array.tsv", tmp_path / "targets.vcf.gz")
    panel = cyvcf2.VCF(str(tmp_path / "panel.vcf.gz"))
    assert set(panel.samples) == set(split.loc[split.role != "test", "sample"])
    assert sum(1 for _ in panel) == hap.shape[0]
    rows, test_idx = _target_rows(tmp_path / "targets.vcf.gz", split, arr)
    for v, i in zip(rows, arr.idx):
        np.testing.assert_array_equal(v.genotype.array()[:, :2], hap[i, test_idx])


def _target_rows(vcf, split, arr):
    """The target VCF's records and the test samples' haplotype columns, checked against the split and array."""
    targets = cyvcf2.VCF(str(vcf))
    test_names = split.loc[split.role == "test", "sample"].tolist()
    assert targets.samples == test_names
    rows = list(targets)
    assert [v.POS for v in rows] == arr.pos.tolist()
    return rows, [int(s[1:]) for s in test_names]


def test_target_vcf_unphased_keeps_the_genotypes_and_loses_the_phase(panel_h5, tmp_path):
    # impute.split.targets_phased false: the array genotypes as a chip gives them (0/1), same samples and sites
    h5, hap = panel_h5
    split = split_samples(h5, tmp_path / "split.tsv", test_fraction=0.25, validation_fraction=0.1, seed=1)
    arr = select_array_sites(h5, tmp_path / "split.tsv", tmp_path / "array.tsv", min_maf=0.05, spacing_bp=2000)
    write_target_vcf(h5, tmp_path / "split.tsv", tmp_path / "array.tsv", tmp_path / "targets.vcf.gz", phased=False)
    rows, test_idx = _target_rows(tmp_path / "targets.vcf.gz", split, arr)
    for v, i in zip(rows, arr.idx):
        g = v.genotype.array()
        assert not g[:, 2].any()  # no call phased
        np.testing.assert_array_equal(np.sort(g[:, :2], axis=1), np.sort(hap[i, test_idx], axis=1))
