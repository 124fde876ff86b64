import faiss
import numpy as np
import pytest

from omicslm.impute.ragbert.retrieval import build_index, retrieve_windows, search, window_query_sites, window_site_weights


def _random_panel(n_hap, d, seed=0):
    return (np.random.default_rng(seed).random((n_hap, d)) < 0.4).astype(np.float32)


def test_query_never_gets_itself_or_its_partner_even_when_partner_is_an_exact_duplicate():
    vec = _random_panel(20, 12)
    vec[7] = vec[6]  # sample 3's two haplotypes are identical: each is the other's exact match
    index = build_index(vec, ivf_min_haplotypes=1000, nlist=4, nprobe=1)
    ids = np.arange(20)
    exclude = np.stack([ids, ids ^ 1], axis=1)
    got = search(index, vec, 3, exclude)
    assert got.shape == (20, 3)
    for q in range(20):
        assert q not in got[q] and (q ^ 1) not in got[q]
    # Without exclusion the duplicate partner is the nearest (distance 0) after itself.
    plain = search(index, vec[6:7], 2)
    assert set(plain[0]) == {6, 7}
    # With exclusion the answer is the true nearest among the others.
    d = ((vec[6] - vec) ** 2).sum(1)
    d[[6, 7]] = np.inf
    assert ((vec[got[6]] - vec[6]) ** 2).sum(1).max() <= np.sort(d)[2]


def test_index_type_is_chosen_by_panel_size_and_ivf_agrees_with_exact():
    vec = _random_panel(400, 16, seed=1)
    assert isinstance(build_index(vec, ivf_min_haplotypes=401, nlist=8, nprobe=8), faiss.IndexFlatL2)
    ivf = build_index(vec, ivf_min_haplotypes=400, nlist=8, nprobe=8)
    assert isinstance(ivf, faiss.IndexIVFFlat) and ivf.nlist == 8 and ivf.nprobe == 8
    flat = build_index(vec, ivf_min_haplotypes=10_000, nlist=8, nprobe=8)
    q = vec[:50] + 0.1
    # nprobe = nlist searches every list: the same distances as exact search.
    dist = lambda ids: ((vec[ids] - q[:, None, :]) ** 2).sum(-1)  # noqa: E731
    np.testing.assert_allclose(dist(search(ivf, q, 5)), dist(search(flat, q, 5)))


def test_k_larger_than_panel_is_a_clear_error():
    vec = _random_panel(6, 4)
    index = build_index(vec, ivf_min_haplotypes=1000, nlist=2, nprobe=1)
    with pytest.raises(ValueError, match=r"K=5 .* panel has 6 haplotypes \(4 after excluding"):
        search(index, vec, 5, np.stack([np.arange(6), np.arange(6) ^ 1], 1))
    with pytest.raises(ValueError, match="K=7"):
        search(index, vec, 7)


def test_window_without_array_sites_uses_nearest_windows_sites():
    windows = np.array([[0, 10], [8, 18], [16, 26], [24, 34]])
    observed = np.array([2, 5, 30])
    sites = window_query_sites(windows, observed, flank_sites=0)
    np.testing.assert_array_equal(sites[0], [2, 5])
    np.testing.assert_array_equal(sites[1], [2, 5])  # nearest window with sites: window 0 (centre 5 vs 29)
    np.testing.assert_array_equal(sites[2], [30])   # centre 21: window 3 (29) is nearer than window 0 (5)
    np.testing.assert_array_equal(sites[3], [30])
    flanked = window_query_sites(windows, observed, flank_sites=4)
    np.testing.assert_array_equal(flanked[1], [5])  # sites 4..21 hold array site 5


def test_retrieve_windows_maps_back_through_tie_breaking_permutation():
    rng = np.random.default_rng(3)
    panel = (rng.random((30, 16)) < 0.5).astype(np.int8)  # 30 sites x 16 haplotypes
    windows = np.array([[0, 15], [15, 30]])
    sites = window_query_sites(windows, np.arange(0, 30, 2), flank_sites=0)
    ids = np.arange(16)
    nb = retrieve_windows(panel, panel, sites, k=2, exclude=np.stack([ids, ids ^ 1], 1), ivf_min_haplotypes=100,
                          nlist=2, nprobe=1, seed=0)
    assert nb.shape == (2, 16, 2)
    for w, s in enumerate(sites):
        for q in range(16):
            assert q not in nb[w, q] and (q ^ 1) not in nb[w, q]
            d = np.abs(panel[s][:, nb[w, q]] - panel[s][:, [q]]).sum(0)
            others = np.abs(panel[s] - panel[s][:, [q]]).sum(0)
            others[[q, q ^ 1]] = 10**6
            assert d.max() <= np.sort(others)[1]  # truly the 2 nearest (ties in any order)


def test_site_weights_decay_outside_the_window_and_steer_retrieval():
    windows = np.array([[10, 20]])
    sites = [np.array([0, 9, 10, 19, 20, 30])]
    w = window_site_weights(windows, sites, decay_sites=10)[0]
    np.testing.assert_allclose(w, np.exp(-np.array([10, 1, 0, 0, 1, 11]) / 10), rtol=1e-6)
    assert window_site_weights(windows, sites, decay_sites=None) is None
    # Query 0 differs from haplotype A at the far site 0 and from haplotype B at the in-window site 10:
    # unweighted both are 1 mismatch away; weighted, the in-window mismatch costs more, so A is nearer.
    panel = np.zeros((31, 2), dtype=np.int8)
    query = np.zeros((31, 1), dtype=np.int8)
    query[0] = 1          # A (col 0) mismatches at site 0 (far)
    panel[0, 1] = 1       # B (col 1) matches at site 0 ...
    panel[10, 1] = 1      # ... but mismatches at site 10 (inside the window)
    nb = retrieve_windows(panel, query, sites, k=1, weights=[w], ivf_min_haplotypes=100, nlist=1, nprobe=1, seed=0)
    assert nb[0, 0, 0] == 0


@pytest.mark.parametrize("ivf", [False, True])
def test_the_nearest_k_of_a_larger_search_are_a_search_for_k_ties_included(ivf):
    # window_data serves the network's k neighbours from the copying model's candidates when both use one
    # query: that is the same answer only if the tie-breaking holds for any K (few sites: many ties)
    rng = np.random.default_rng(5)
    panel = (rng.random((40, 400)) < 0.3).astype(np.int8)
    query = (rng.random((40, 60)) < 0.3).astype(np.int8)
    windows = np.array([[0, 20], [20, 40]])
    sites = window_query_sites(windows, np.arange(0, 40, 4), flank_sites=4)
    weights = window_site_weights(windows, sites, decay_sites=2.0)
    exclude = np.stack([np.arange(60), np.arange(60) + 60], 1)
    opts = dict(ivf_min_haplotypes=100 if ivf else 10_000, nlist=4, nprobe=4, seed=1, threads=1)
    for ex in (None, exclude):
        small = retrieve_windows(panel, query, sites, k=3, exclude=ex, weights=weights, **opts)
        large = retrieve_windows(panel, query, sites, k=32, exclude=ex, weights=weights, **opts)
        np.testing.assert_array_equal(large[:, :, :3], small)


@pytest.mark.parametrize("n_sites, n_founders, k", [(6, 12, 20), (24, 12, 20), (24, 150, 5)])
def test_searching_each_distinct_allele_vector_once_gives_the_plain_searchs_order(n_sites, n_founders, k, monkeypatch):
    # unweighted: distances are small integers, exact in float32, so both searches see the same ties and must
    # order them alike (distance, then the tie-breaking permutation); 6 sites: few distinct vectors, long runs of
    # equal distance at the K boundary (the grouped search widens its search for them)
    import omicslm.impute.ragbert.retrieval as R

    rng = np.random.default_rng(11)
    founders = (rng.random((n_sites, n_founders)) < 0.4).astype(np.int8)
    panel = founders[:, rng.integers(0, n_founders, 300)]
    panel[:, :30] = (rng.random((n_sites, 30)) < 0.4)  # and some haplotypes of their own
    query = panel[:, rng.integers(0, 300, 40)].copy()
    query[rng.random(query.shape) < 0.1] ^= 1
    windows = np.array([[0, n_sites // 2], [n_sites // 2, n_sites]])
    sites = window_query_sites(windows, np.arange(n_sites), flank_sites=n_sites)
    ids = np.arange(40)
    exclude = np.stack([ids * 7, ids * 7 + 1], 1)
    opts = dict(ivf_min_haplotypes=10_000, nlist=4, nprobe=4, seed=3, threads=1)
    for ex in (None, exclude):
        grouped = retrieve_windows(panel, query, sites, k=k, exclude=ex, **opts)
        monkeypatch.setattr(R, "GROUPED_MAX_FRACTION", 0.0)  # the plain search over every haplotype
        plain = retrieve_windows(panel, query, sites, k=k, exclude=ex, **opts)
        monkeypatch.undo()
        np.testing.assert_array_equal(grouped, plain)
        if ex is not None:
            assert not (grouped[:, :, :, None] == ex[None, :, None, :]).any()


def test_the_grouped_search_is_used_where_the_panel_repeats_itself():
    from omicslm.impute.ragbert.retrieval import grouped_search

    rng = np.random.default_rng(2)
    cols = (rng.random((8, 50)) < 0.5).astype(np.int8)
    q = (rng.random((5, 8)) < 0.5).astype(np.float32)
    rank = np.arange(50)
    assert grouped_search(cols[:, np.arange(200) % 50], np.float32(1.0), np.arange(200), q, 3, None) is not None
    assert grouped_search(np.vstack([cols, np.eye(50, dtype=np.int8)]), np.float32(1.0), rank,
                          np.hstack([q, np.zeros((5, 50), np.float32)]), 3, None) is None  # all distinct: plain search


def test_packed_sites_give_a_runs_keys_and_alleles_whatever_its_byte_alignment():
    # retrieval slices each window's grouping keys and representatives' alleles out of the panel packed once; a
    # key must hold the run's alleles and nothing of the sites beside it in its first and last bytes
    from omicslm.impute.ragbert.retrieval import PackedSites

    rng = np.random.default_rng(4)
    panel = (rng.random((60, 30)) < 0.5).astype(np.int8)
    sites = np.sort(rng.choice(60, 37, replace=False))
    packed = PackedSites(panel, sites)
    for start, stop in [(0, 37), (3, 4), (5, 13), (9, 16), (8, 16), (13, 37), (1, 2)]:
        run = sites[start:stop]
        assert packed.run(run) == (start, stop)
        alleles = panel[run].T  # (n_panel, n_sites)
        np.testing.assert_array_equal(packed.alleles(np.arange(30), start, stop), alleles)
        np.testing.assert_array_equal(packed.alleles(np.array([7, 2]), start, stop), alleles[[7, 2]])
        keys = packed.keys(start, stop)
        same_key = (keys[:, None, :] == keys[None, :, :]).all(axis=-1)
        np.testing.assert_array_equal(same_key, (alleles[:, None, :] == alleles[None, :, :]).all(axis=-1))
    assert packed.run(sites[[0, 2]]) is None         # not a run of the packed sites
    assert packed.run(np.array([sites[-1] + 1])) is None
