import numpy as np
import pytest

from omicslm.errors import InputError
from omicslm.impute.ragbert.copying import copying_alt_prob, forward_backward, site_cm, switch_probability
from omicslm.impute.ragbert.retrieval import retrieve_windows, window_query_sites


def test_switch_probability_is_beagles_form():
    p = switch_probability(np.array([0.0, 0.01, 1.0]), ne=1e5, n_panel_haplotypes=400)
    np.testing.assert_allclose(p, 1 - np.exp(-0.04 * 1e5 * np.array([0.0, 0.01, 1.0]) / 400))
    assert p[0] == 0 and 0 < p[1] < p[2] < 1


def test_posteriors_are_distributions_and_follow_the_matching_state():
    rng = np.random.default_rng(0)
    em = rng.uniform(0.01, 1, (3, 7, 4))
    post = forward_backward(em, np.full(6, 0.1))
    assert post.dtype == np.float32
    np.testing.assert_allclose(post.sum(axis=2), 1.0, rtol=1e-6)
    # state 2 matches at every site, the others mismatch somewhere: with rare switches it dominates
    em = np.full((1, 6, 4), 0.999)
    em[0, 1, [0, 1, 3]] = em[0, 3, [0, 3]] = em[0, 4, 1] = 0.001
    assert (forward_backward(em, np.full(5, 1e-4))[0].argmax(axis=1) == 2).all()


def test_posteriors_equal_path_enumeration_and_a_site_range_equals_its_slice():
    import itertools

    rng = np.random.default_rng(3)
    q, n, k = 2, 5, 3
    em = rng.uniform(0.05, 1, (q, n, k))
    switch = rng.uniform(0.01, 0.5, n - 1)
    trans = [(1 - r) * np.eye(k) + r / k for r in switch]  # switch: the new state is uniform over states
    exact = np.zeros((q, n, k))
    for path in itertools.product(range(k), repeat=n):
        w = em[:, 0, path[0]] / k * np.prod([trans[a][path[a], path[a + 1]] * em[:, a + 1, path[a + 1]]
                                             for a in range(n - 1)], axis=0)
        for a, state in enumerate(path):
            exact[:, a, state] += w
    exact /= exact.sum(axis=2, keepdims=True)
    full = forward_backward(em, switch)
    np.testing.assert_allclose(full, exact, rtol=1e-5, atol=1e-6)
    for lo, hi in [(0, 1), (1, 3), (2, 5), (4, 5), (0, 5)]:  # the passes stop early: same values
        np.testing.assert_allclose(forward_backward(em, switch, lo, hi), full[:, lo:hi], rtol=1e-6, atol=1e-7)
    with pytest.raises(ValueError, match="lo < hi"):
        forward_backward(em, switch, 3, 3)


def _two_founders(n_sites=40):
    """Panel of founders A and B that differ at every site; array sites are the even ones."""
    a = np.zeros(n_sites, np.int8)
    b = np.ones(n_sites, np.int8)
    panel = np.stack([a, a, b, b], axis=1)  # 4 haplotypes: 2 copies of each founder
    observed = np.arange(0, n_sites, 2)
    return panel, observed


def test_untyped_sites_take_the_allele_of_the_haplotype_copied_around_them():
    panel, observed = _two_founders()
    n = panel.shape[0]
    query = np.zeros((n, 1), np.int8)
    query[n // 2:, 0] = 1  # copies A on the left half, B on the right half (one switch)
    windows = np.array([[0, n]])
    sites = [observed]
    cand = np.arange(4)[None, None, :]
    cm = np.arange(n) * 0.01
    p = copying_alt_prob(panel, query, windows, sites, cand, cm, ne=1e4, error=1e-3)[:, 0]
    untyped = np.setdiff1d(np.arange(n), observed)
    left, right = untyped[untyped < n // 2 - 2], untyped[untyped > n // 2 + 2]
    assert (p[left] < 0.01).all() and (p[right] > 0.99).all()
    assert p.dtype == np.float32 and p.shape == (n,)


def test_sites_outside_every_window_stay_uninformative_and_windows_average():
    panel, observed = _two_founders(20)
    query = np.ones((20, 1), np.int8)
    cand = np.tile(np.arange(4), (2, 1, 1))
    p = copying_alt_prob(panel, query, np.array([[0, 8], [4, 12]]), [observed, observed], cand,
                         np.arange(20) * 0.01, ne=1e4, error=1e-3)[:, 0]
    assert (p[12:] == 0.5).all() and (p[:12] > 0.99).all()


def test_a_training_query_never_copies_itself_or_its_partner():
    """A private allele (only haplotype 0 carries it) must not be recovered when 0 is the query."""
    rng = np.random.default_rng(3)
    panel = (rng.random((30, 12)) < 0.4).astype(np.int8)
    private = 15
    panel[private] = 0
    panel[private, 0] = 1
    observed = np.setdiff1d(np.arange(0, 30, 2), [private])
    windows = np.array([[0, 30]])
    sites = window_query_sites(windows, observed, flank_sites=0)
    ids = np.arange(12)
    kw = dict(k=8, ivf_min_haplotypes=1000, nlist=2, nprobe=1, seed=0)
    excluded = retrieve_windows(panel, panel, sites, exclude=np.stack([ids, ids ^ 1], 1), **kw)
    included = retrieve_windows(panel, panel, sites, **kw)
    cm = np.arange(30) * 0.01
    p_ex = copying_alt_prob(panel, panel, windows, sites, excluded, cm, ne=100, error=1e-3)
    p_in = copying_alt_prob(panel, panel, windows, sites, included, cm, ne=100, error=1e-3)
    assert p_ex[private, 0] == 0.0  # nobody it may copy carries the allele
    assert p_in[private, 0] > 0.9  # ...while copying itself would hand it the answer


def test_error_rate_is_checked():
    panel, observed = _two_founders(10)
    with pytest.raises(ValueError, match="copying error"):
        copying_alt_prob(panel, panel[:, :1], np.array([[0, 10]]), [observed], np.arange(4)[None, None],
                         np.arange(10) * 0.01, ne=1e4, error=0.0)


def test_genetic_positions_from_a_plink_map_or_uniform(tmp_path):
    pos = np.array([500, 1000, 1500, 3000, 4000])
    np.testing.assert_allclose(site_cm(pos, cm_per_mb=2.0), pos * 2e-6)
    gmap = tmp_path / "map.plink.map"
    gmap.write_text("chr1 . 0.0 1000\nchr1 . 0.5 2000\nchr1 . 0.5 3000\n")
    # inside: linear; beyond the ends: the map's average rate (0.5 cM over 2 kb)
    np.testing.assert_allclose(site_cm(pos, genetic_map=gmap), [-0.125, 0.0, 0.25, 0.5, 0.75])
    bad = tmp_path / "bad.map"
    bad.write_text("chr1 . 0.0 1000\nchr1 . 0.5 900\n")
    with pytest.raises(InputError, match="bad.map.*increasing positions"):
        site_cm(pos, genetic_map=bad)
