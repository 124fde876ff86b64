import cyvcf2
import pandas as pd
import pytest

import numpy as np

from omicslm.impute.simulate import simulate_panel, simulate_target_files, target_sample_names, write_target_panel


def test_simulated_panel_looks_like_1000_genomes(tmp_path):
    vcf, panel = tmp_path / "sim.vcf.gz", tmp_path / "panel.txt"
    stats = simulate_panel(vcf, panel, contig="chr21", left=20_000_000, length=50_000,
                           populations={"YRI": 4, "CEU": 3}, super_populations={"YRI": "AFR", "CEU": "EUR"}, seed=3)
    df = pd.read_csv(panel, sep="\t")
    assert list(df.columns) == ["sample", "pop", "super_pop", "gender"]
    assert df.groupby("pop").size().to_dict() == {"CEU": 3, "YRI": 4}
    assert set(df.super_pop) == {"AFR", "EUR"} and set(df.gender) <= {"male", "female"}
    v = cyvcf2.VCF(str(vcf))
    assert v.samples == df["sample"].tolist()
    records = list(v)
    assert len(records) == stats["n_sites"] > 0
    positions = [r.POS for r in records]
    assert all(20_000_000 <= p < 20_050_000 for p in positions) and positions == sorted(positions)
    assert all(r.CHROM == "chr21" for r in records)
    assert all(r.genotype.array()[:, 2].all() for r in records), "every genotype is phased"
    assert (tmp_path / "sim.vcf.gz.tbi").exists()


def test_same_seed_same_data_other_seed_differs(tmp_path):
    kw = dict(contig="chr21", left=20_000_000, length=30_000, populations={"CHB": 3})
    simulate_panel(tmp_path / "a.vcf.gz", tmp_path / "a.txt", seed=5, **kw)
    simulate_panel(tmp_path / "b.vcf.gz", tmp_path / "b.txt", seed=5, **kw)
    simulate_panel(tmp_path / "c.vcf.gz", tmp_path / "c.txt", seed=6, **kw)
    body = lambda p: [line for line in __import__("gzip").open(p, "rt") if not line.startswith("##fileDate")]
    assert body(tmp_path / "a.vcf.gz") == body(tmp_path / "b.vcf.gz")
    assert body(tmp_path / "a.vcf.gz") != body(tmp_path / "c.vcf.gz")


def test_unknown_population_is_named(tmp_path):
    with pytest.raises(ValueError, match=r"no population\(s\) \['XYZ'\]"):
        simulate_panel(tmp_path / "a.vcf.gz", tmp_path / "a.txt", length=10_000, populations={"XYZ": 2})
    assert list(tmp_path.iterdir()) == []


def test_simulated_target_files_are_a_panel_unphased_targets_and_their_truth(tmp_path):
    pops = {"YRI": 5, "CEU": 4}
    ref, tgt, truth = (tmp_path / f"{n}.vcf.gz" for n in ("ref", "targets", "truth"))
    stats = simulate_target_files(ref, tgt, truth, contig="chr22", left=20_000_000, length=40_000, populations=pops,
                                  targets_per_population=2, seed=4)
    write_target_panel(tmp_path / "panel.txt", populations=pops, targets_per_population=2,
                       super_populations={"YRI": "AFR"})
    targets, reference = target_sample_names(pops, 2)
    assert targets == ["YRI0004", "YRI0005", "CEU0003", "CEU0004"] and len(reference) == 5
    panel = pd.read_csv(tmp_path / "panel.txt", sep="\t")
    assert panel["sample"].tolist() == reference and panel["super_pop"].tolist() == ["AFR"] * 3 + ["CEU"] * 2
    r, t, u = (cyvcf2.VCF(str(p)) for p in (ref, tgt, truth))
    assert r.samples == reference and sorted(t.samples) == sorted(targets) and u.samples == t.samples
    n = 0
    for a, b, c in zip(r, t, u):
        assert a.POS == b.POS == c.POS and b.CHROM == "chr22"
        gt_t, gt_u = b.genotype.array(), c.genotype.array()
        assert not gt_t[:, 2].any() and gt_u[:, 2].all()  # targets unphased, truth phased
        assert np.array_equal(np.sort(gt_t[:, :2], axis=1), np.sort(gt_u[:, :2], axis=1))  # the same genotypes
        n += 1
    assert n == stats["n_sites"] > 0 and stats["n_targets"] == 4
    with pytest.raises(ValueError, match="leaves no reference sample of CEU"):
        target_sample_names(pops, 4)
