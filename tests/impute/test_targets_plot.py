"""r² along the chromosome (omicslm.impute.targets_plot) on small hand-built VCFs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from omicslm.impute.chunks import CHUNK_COLUMNS
from omicslm.impute.targets_plot import COLUMNS, core_boundaries, pairs, plot_r2_along, r2_along, write_r2_along
from omicslm.io.vcf import write_vcf

BIN_KB = 10
MIN_SITES = 5
N_PANEL, N_TARGET = 40, 30
# bin 0 (1..10000): 12 sites, every 3rd typed; bin 1: 3 untyped sites (sparse); bin 2: none; bin 3: 8 sites
BIN0 = np.arange(500, 10_000, 800)[:12]
BIN1 = np.array([12_000, 15_000, 18_000])
BIN3 = np.arange(31_000, 39_000, 1000)
POS = np.concatenate([BIN0, BIN1, BIN3])
TYPED = BIN0[::3]
ABSENT_IN_QC = BIN0[1]  # a target record QC dropped ("absent"): its site is not typed, so it is scored


def _chrom_data(d, chrom: str, seed: int) -> dict:
    """Panel, truth, two methods' imputed VCFs and a QC table of one chromosome; values returned for checks."""
    rng = np.random.default_rng(seed)
    n = len(POS)
    p = rng.uniform(0.15, 0.85, n)
    p[2] = 0.95  # a panel-major ALT: scored in minor-allele coding
    panel_hap = (rng.random((n, N_PANEL, 2)) < p[:, None, None]).astype(np.int8)
    panel_hap[:, 0, 0], panel_hap[:, 1, 0] = 0, 1  # polymorphic everywhere
    truth_hap = (rng.random((n, N_TARGET, 2)) < p[:, None, None]).astype(np.int8)
    truth = truth_hap.sum(axis=2)
    ref, alt = ["A"] * n, ["G"] * n
    names = [f"T{i:02d}" for i in range(N_TARGET)]
    write_vcf(d / f"panel_{chrom}.vcf.gz", contig=chrom, positions=POS, ref=ref, alt=alt,
              samples=[f"P{i:02d}" for i in range(N_PANEL)], haplotypes=panel_hap)
    write_vcf(d / f"truth_{chrom}.vcf.gz", contig=chrom, positions=POS, ref=ref, alt=alt, samples=names,
              haplotypes=truth_hap)
    typed = np.isin(POS, TYPED)
    dosages = {}
    for m, noise in (("beagle", 0.3), ("minimac4", 0.6)):
        ds = np.clip(truth + rng.normal(0, noise, truth.shape), 0, 2)
        ds[typed] = 2 - truth[typed]  # a typed site scored would pull r² down
        ds = np.round(ds, 3)  # as write_vcf writes DS
        dosages[m] = ds
        write_vcf(d / f"{m}_{chrom}.vcf.gz", contig=chrom, positions=POS, ref=ref, alt=alt, samples=names[::-1],
                  haplotypes=truth_hap[:, ::-1], dosages=ds[:, ::-1])  # another sample order than the truth's
    qc_pos = np.concatenate([TYPED, [ABSENT_IN_QC]])
    pd.DataFrame({"pos": qc_pos, "action": ["match"] * len(TYPED) + ["absent"]}).to_csv(
        d / f"qc_{chrom}.tsv", sep="\t", index=False)
    chunks = pd.DataFrame({"chunk": [f"{chrom}_000", f"{chrom}_001", f"{chrom}_002"], "contig": chrom,
                           "core_start": [500, 15_000, 30_000], "core_end": [14_999, 29_999, 38_000],
                           "start": [500, 10_000, 25_000], "end": [20_000, 35_000, 38_000],
                           "n_panel_sites": 10, "n_target_sites": [4, 0, 0], "kept": [True, False, True]})
    chunks[list(CHUNK_COLUMNS)].to_csv(d / f"chunks_{chrom}.tsv", sep="\t", index=False)
    return dict(p=p, panel_hap=panel_hap, truth=truth, dosages=dosages, typed=typed)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("r2along")
    chroms = {"chr20": _chrom_data(d, "chr20", 1), "chr21": _chrom_data(d, "chr21", 2)}
    files = {
        "imputed": {(m, c): d / f"{m}_{c}.vcf.gz" for m in ("beagle", "minimac4") for c in chroms},
        "truth": {c: d / f"truth_{c}.vcf.gz" for c in chroms},
        "panel": {c: d / f"panel_{c}.vcf.gz" for c in chroms},
        "qc": {c: d / f"qc_{c}.tsv" for c in chroms},
        "chunks": {c: d / f"chunks_{c}.tsv" for c in chroms},
    }
    return d, chroms, files


@pytest.fixture(scope="module")
def table(data):
    _, _, f = data
    return r2_along(f["imputed"], f["truth"], f["panel"], f["qc"], bin_kb=BIN_KB, min_sites=MIN_SITES)


def _hand_r2(chrom_data, method, in_bin):
    """numpy corrcoef of dosage and truth pooled over ``in_bin``'s sites, in panel-minor coding."""
    af = chrom_data["panel_hap"].mean(axis=(1, 2))
    x, y = chrom_data["dosages"][method][in_bin], chrom_data["truth"][in_bin].astype(float)
    flip = af[in_bin] > 0.5
    x = np.where(flip[:, None], 2 - x, x)
    y = np.where(flip[:, None], 2 - y, y)
    return np.corrcoef(x.ravel(), y.ravel())[0, 1] ** 2


def test_table_layout(table):
    assert list(table.columns) == COLUMNS
    assert list(dict.fromkeys(table["method"])) == ["beagle", "minimac4"]
    for (_, _), rows in table.groupby(["method", "chrom"]):
        assert rows["bin_start"].tolist() == [1, 10_001, 20_001, 30_001]
        assert rows["bin_end"].tolist() == [10_000, 20_000, 30_000, 40_000]


def test_r2_of_a_bin_is_the_hand_computation_without_typed_sites(data, table):
    _, chroms, _ = data
    for chrom, cd in chroms.items():
        for method in ("beagle", "minimac4"):
            row = table.loc[(table["method"] == method) & (table["chrom"] == chrom)].iloc[0]
            untyped = (POS <= 10_000) & ~cd["typed"]
            assert row["n_sites"] == untyped.sum() == len(BIN0) - len(TYPED)  # the QC-"absent" site is scored
            assert row["r2"] == pytest.approx(_hand_r2(cd, method, untyped), rel=1e-5)
            with_typed = _hand_r2(cd, method, POS <= 10_000)
            assert abs(row["r2"] - with_typed) > 0.05  # typed sites (anti-correlated dosage) were left out
            last = table.loc[(table["method"] == method) & (table["chrom"] == chrom)].iloc[-1]
            assert last["r2"] == pytest.approx(_hand_r2(cd, method, POS > 30_000), rel=1e-5)


def test_sparse_and_empty_bins_are_nan(table):
    sparse = table.loc[table["bin_start"] == 10_001]
    assert (sparse["n_sites"] == len(BIN1)).all() and sparse["r2"].isna().all()
    empty = table.loc[table["bin_start"] == 20_001]
    assert (empty["n_sites"] == 0).all() and empty["r2"].isna().all()
    assert table.loc[table["bin_start"] == 30_001, "r2"].notna().all()


def test_min_sites_lowered_fills_the_sparse_bin(data):
    _, chroms, f = data
    one = {("beagle", "chr20"): f["imputed"][("beagle", "chr20")]}
    t = r2_along(one, f["truth"], f["panel"], f["qc"], bin_kb=BIN_KB, min_sites=3)
    row = t.loc[t["bin_start"] == 10_001].iloc[0]
    assert row["r2"] == pytest.approx(_hand_r2(chroms["chr20"], "beagle", np.isin(POS, BIN1)), rel=1e-5)


def test_core_boundaries_are_read(data):
    _, _, f = data
    edges, dropped = core_boundaries(f["chunks"]["chr20"])
    assert edges.tolist() == [500, 15_000, 30_000, 38_000]
    assert dropped == [(15_000, 29_999)]


def test_png_and_tsv_are_written(data, tmp_path):
    _, _, f = data
    out_tsv, out_png = tmp_path / "r2_along.tsv", tmp_path / "r2_along.png"
    t = write_r2_along(f["imputed"], f["truth"], f["panel"], f["qc"], f["chunks"], out_tsv, out_png, bin_kb=BIN_KB,
                       min_sites=MIN_SITES)
    assert out_png.stat().st_size > 1000
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    back = pd.read_csv(out_tsv, sep="\t")
    assert list(back.columns) == COLUMNS and len(back) == len(t)
    np.testing.assert_allclose(back["r2"], t["r2"], rtol=1e-6)
    assert not list(tmp_path.glob(".*"))  # no temporary left


def test_plot_without_chunk_table(table, tmp_path):
    plot_r2_along(table, {}, tmp_path / "p.png")
    assert (tmp_path / "p.png").stat().st_size > 0


def test_bad_arguments(data):
    _, _, f = data
    with pytest.raises(ValueError, match="bin_kb"):
        r2_along(f["imputed"], f["truth"], f["panel"], f["qc"], bin_kb=0, min_sites=1)
    with pytest.raises(ValueError, match="min_sites"):
        r2_along(f["imputed"], f["truth"], f["panel"], f["qc"], bin_kb=1, min_sites=0)
    with pytest.raises(ValueError, match="chr21"):
        r2_along(f["imputed"], {"chr20": f["truth"]["chr20"]}, f["panel"], f["qc"], bin_kb=1, min_sites=1)


def test_pairs_follow_the_rule_order():
    got = pairs(["a", "b"], ["1", "2"], ["a1", "a2", "b1", "b2"])
    assert got == {("a", "1"): "a1", ("a", "2"): "a2", ("b", "1"): "b1", ("b", "2"): "b2"}
    with pytest.raises(ValueError):
        pairs(["a"], ["1", "2"], ["a1"])
