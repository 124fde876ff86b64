"""Our imputed VCF's genotype fields from haplotype ALT probabilities (omicslm.impute.imputed_vcf)."""

import numpy as np
import pytest

from omicslm.impute.imputed_vcf import genotype_outputs


def test_genotype_outputs_formulas():
    p = np.array([[[0.2, 0.9], [0.0, 1.0]]])
    hap, ds, gp, info = genotype_outputs(p)
    np.testing.assert_array_equal(hap[0], [[0, 1], [0, 1]])
    np.testing.assert_allclose(ds[0], [1.1, 1.0], rtol=1e-6)
    np.testing.assert_allclose(gp[0, 0], [0.8 * 0.1, 0.2 * 0.1 + 0.9 * 0.8, 0.18], rtol=1e-6)
    assert info["AF"][0] == pytest.approx(2.1 / 4)
    # DS values 1.1 and 1.0: tiny spread vs 2p(1-p) ~ 0.5 -> low estimated r2
    assert info["R2"][0] == pytest.approx(np.var([1.1, 1.0]) / (2 * 0.525 * 0.475), rel=1e-5)


def _genotype_outputs_numpy(p):
    """The formulas of genotype_outputs, written out in numpy (float64)."""
    p = np.clip(p.astype(np.float64), 0.0, 1.0)
    p1, p2 = p[..., 0], p[..., 1]
    ds = p1 + p2
    gp = np.stack([(1 - p1) * (1 - p2), p1 * (1 - p2) + p2 * (1 - p1), p1 * p2], axis=-1)
    af = ds.mean(axis=1) / 2
    expected = 2 * af * (1 - af)
    with np.errstate(invalid="ignore", divide="ignore"):
        r2 = np.where(expected > 0, ds.var(axis=1) / expected, 0.0)
    return (p >= 0.5).astype(np.int8), ds, gp, af, np.clip(r2, 0, 1)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_genotype_outputs_compiled_equals_the_formulas(dtype):
    rng = np.random.default_rng(0)
    p = rng.random((300, 41, 2)).astype(dtype)
    p[:50] = (p[:50] > 0.5)  # certain sites (monomorphic ones among them: R2 0)
    p[50:60] = 0.0
    p[60, 3, 1], p[61, 0, 0], p[62, 5, 1] = -0.01, 1.02, np.nan  # clipped; NaN kept for the writer to refuse
    hap, ds, gp, info = genotype_outputs(p, threads=2)
    want_hap, want_ds, want_gp, want_af, want_r2 = _genotype_outputs_numpy(p)
    np.testing.assert_array_equal(hap, want_hap)
    assert ds.dtype == gp.dtype == info["AF"].dtype == info["R2"].dtype == np.float32
    np.testing.assert_allclose(ds, want_ds.astype(np.float32), rtol=1e-7, atol=1e-7)
    np.testing.assert_allclose(gp, want_gp.astype(np.float32), rtol=1e-7, atol=1e-7)
    np.testing.assert_allclose(info["AF"], want_af.astype(np.float32), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(info["R2"], want_r2.astype(np.float32), rtol=1e-5, atol=1e-6)
    assert np.isnan(ds[62, 5]) and np.isnan(info["AF"][62]) and (info["R2"][50:60] == 0).all()
