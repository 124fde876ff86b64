import subprocess
import shutil

import cyvcf2
import numpy as np
import pytest

from omicslm.io.vcf import write_vcf


def _example(tmp_path, **extra):
    rng = np.random.default_rng(0)
    hap = rng.integers(0, 2, (4, 3, 2)).astype(np.int8)
    out = tmp_path / "x.vcf.gz"
    write_vcf(out, contig="20", positions=np.array([100, 200, 300, 400]), ref=list("ACGT"), alt=list("GTAC"),
              samples=["s1", "s2", "s3"], haplotypes=hap, **extra)
    return out, hap


def test_roundtrip_phased_gt_and_index(tmp_path):
    out, hap = _example(tmp_path)
    assert (tmp_path / "x.vcf.gz.tbi").exists()
    vcf = cyvcf2.VCF(str(out))
    assert vcf.samples == ["s1", "s2", "s3"]
    got = []
    for v in vcf("20:150-350"):  # region query proves the tabix index works
        g = v.genotype.array()
        assert g[:, 2].all(), "all genotypes must be phased"
        got.append((v.POS, v.REF, v.ALT[0], g[:, :2]))
    assert [g[0] for g in got] == [200, 300]
    np.testing.assert_array_equal(got[0][3], hap[1])
    assert (got[1][1], got[1][2]) == ("G", "A")


def test_dosage_gp_info_written(tmp_path):
    ds = np.array([[0.1, 1.5, 2.0]] * 4)
    gp = np.tile(np.array([0.2, 0.3, 0.5]), (4, 3, 1))
    out, _ = _example(tmp_path, dosages=ds, genotype_probs=gp, info={"AF": np.array([0.1, 0.2, 0.3, 0.4])},
                      info_header=['##INFO=<ID=AF,Number=A,Type=Float,Description="ALT frequency">'])
    v = next(iter(cyvcf2.VCF(str(out))))
    np.testing.assert_allclose(v.format("DS")[:, 0], [0.1, 1.5, 2.0], atol=1e-3)
    np.testing.assert_allclose(v.format("GP")[0], [0.2, 0.3, 0.5], atol=1e-3)
    assert v.INFO["AF"] == pytest.approx(0.1)


def test_hap_dosages_and_flags_written(tmp_path):
    # HDS (one ALT dose per haplotype, as Beagle and minimac4 write it) and INFO flags (IMP / TYPED)
    hds = np.tile(np.array([[0.25, 0.75], [1.0, 0.0], [0.5, 0.125]]), (4, 1, 1))
    typed = np.array([True, False, False, True])
    out, _ = _example(tmp_path, hap_dosages=hds, info={"IMP": ~typed, "TYPED": typed},
                      info_header=['##INFO=<ID=IMP,Number=0,Type=Flag,Description="imputed">',
                                   '##INFO=<ID=TYPED,Number=0,Type=Flag,Description="typed">'])
    rows = list(cyvcf2.VCF(str(out)))
    np.testing.assert_allclose(rows[0].format("HDS"), hds[0], atol=1e-3)
    assert [(v.INFO.get("TYPED"), v.INFO.get("IMP")) for v in rows] == [(True, None), (None, True), (None, True),
                                                                         (True, None)]
    if shutil.which("bcftools"):  # bcftools reads the flag and the per-haplotype field
        res = subprocess.run(["bcftools", "query", "-i", "INFO/IMP=1", "-f", "%POS\t[%HDS ]\n", str(out)],
                             capture_output=True, text=True, check=True)
        assert [line.split("\t")[0] for line in res.stdout.splitlines()] == ["200", "300"]
        assert res.stdout.splitlines()[0].split("\t")[1].split()[0] == "0.25,0.75"


@pytest.mark.skipif(shutil.which("bcftools") is None, reason="bcftools not installed (make setup installs it)")
def test_bcftools_reads_it(tmp_path):
    out, _ = _example(tmp_path)
    res = subprocess.run(["bcftools", "view", "-H", str(out)], capture_output=True, text=True, check=True)
    assert len(res.stdout.splitlines()) == 4


def test_shape_mismatch_is_an_error_and_writes_nothing(tmp_path):
    with pytest.raises(ValueError, match="shape mismatch"):
        write_vcf(tmp_path / "bad.vcf.gz", contig="1", positions=np.array([1, 2]), ref=["A"], alt=["C"],
                  samples=["a"], haplotypes=np.zeros((1, 1, 2), np.int8))
    assert list(tmp_path.iterdir()) == []


def test_numbers_are_printed_as_numpy_rounds_them_and_clipped(tmp_path):
    # 3 decimals, rounded half to even as numpy's rint of the float32 value x 1000; clipped to [0, 2] / [0, 1]
    hds = np.tile(np.array([[0.0005, 0.9995], [1.5, -0.25], [0.1234, 0.0004999]], dtype=np.float32), (4, 1, 1))
    ds = np.tile(np.array([2.5, 1.9996, 0.0015], dtype=np.float32), (4, 1))
    out, _ = _example(tmp_path, hap_dosages=hds, dosages=ds)
    line = next(ln for ln in subprocess.run(["gzip", "-dc", str(out)], capture_output=True, text=True,
                                           check=True).stdout.splitlines() if not ln.startswith("#"))
    fields = [f.split(":")[1:] for f in line.split("\t")[9:]]
    want = [(f"{np.rint(np.float32(d) * 1000) / 1000:.3f}",
             ",".join(f"{np.rint(np.float32(v) * 1000) / 1000:.3f}" for v in h)) for d, h in
            zip(np.clip(ds[0], 0, 2), np.clip(hds[0], 0, 1))]
    assert [tuple(f) for f in fields] == want
    assert fields[1] == ["2.000", "1.000,0.000"] and fields[2][0] == "0.002"


def test_nan_dosage_is_an_error_naming_the_record_and_writes_nothing(tmp_path):
    ds = np.zeros((4, 3), dtype=np.float32)
    ds[2, 1] = np.nan
    with pytest.raises(ValueError, match=r"NaN .* record 2 \(position 300\), sample 1"):
        _example(tmp_path, dosages=ds)
    assert list(tmp_path.iterdir()) == []
