import numpy as np
import pytest

from omicslm.impute.ragbert.composite import composite_alt_prob, composite_states
from omicslm.impute.ragbert.copying import copying_alt_prob
from omicslm.impute.ragbert.retrieval import window_query_sites


def _panel(seed=0, n_var=300, n_panel=40, n_q=6):
    rng = np.random.default_rng(seed)
    # haplotypes as mosaics of a few founders, so copying is informative; some rare sites
    founders = (rng.random((n_var, 5)) < rng.uniform(0.02, 0.5, n_var)[:, None]).astype(np.int8)
    pick = rng.integers(0, 5, size=(n_var // 50 + 1, n_panel + n_q)).repeat(50, axis=0)[:n_var]
    hap = np.take_along_axis(founders, pick, axis=1)
    flip = rng.random(hap.shape) < 0.01
    hap = np.where(flip, 1 - hap, hap).astype(np.int8)
    return hap[:, :n_panel], hap[:, n_panel:]


def test_composite_equals_the_windowed_model_where_the_state_sets_coincide():
    panel, query = _panel()
    n_var = panel.shape[0]
    observed = np.arange(0, n_var, 4)
    windows = np.array([[s, min(n_var, s + 64)] for s in range(0, n_var, 48)])
    # every window: all panel haplotypes as states, and an HMM over all array sites
    cand = np.broadcast_to(np.arange(panel.shape[1]), (len(windows), query.shape[1], panel.shape[1])).copy()
    sites = window_query_sites(windows, observed, flank_sites=10_000)
    cm = np.linspace(0, 2.0, n_var)
    old = copying_alt_prob(panel, query, windows, sites, cand, cm, ne=1000.0, error=0.01)
    new = composite_alt_prob(panel, query, observed, cand, cm, ne=1000.0, error=0.01, max_states=1000,
                             query_batch=4, site_block=64)
    assert new.shape == old.shape and np.abs(new - old).max() < 1e-4


def test_composite_states_keep_the_most_often_retrieved_and_pad():
    cand = np.array([[[3, 1], [5, 6]], [[3, 2], [5, 5]], [[3, 1], [7, -1]]])  # (windows 3, queries 2, k 2)
    states, valid = composite_states(cand, max_states=2)
    assert states[0].tolist() == [1, 3] and valid[0].all()  # 3 (x3) and 1 (x2) beat 2 (x1)
    assert states[1].tolist() == [5, 6] and valid[1].all()  # 5 (x3), then 6 before 7 (tie: lower column)
    states, valid = composite_states(cand[:, 1:], max_states=8)
    assert states[0, valid[0]].tolist() == [5, 6, 7] and not valid[0, 3:].any()


def test_padded_states_carry_no_mass_and_probabilities_stay_in_range():
    panel, query = _panel(seed=1)
    n_var = panel.shape[0]
    observed = np.arange(0, n_var, 3)
    windows = np.array([[0, n_var]])
    rng = np.random.default_rng(2)
    # query 0 has 5 candidates, the others 20: query 0's set is padded
    cand = np.stack([rng.choice(panel.shape[1], 20, replace=False) for _ in range(query.shape[1])])[None]
    cand[0, 0, 5:] = -1
    p = composite_alt_prob(panel, query, observed, cand, np.linspace(0, 1, n_var), ne=500.0, error=0.01,
                           max_states=64)
    assert np.all((p >= 0) & (p <= 1))
    # query 0 copies only its 5 states: a site where all 5 carry REF has ALT probability ~0
    five = cand[0, 0, :5]
    ref_only = np.flatnonzero((panel[:, five] == 0).all(axis=1))
    ref_only = ref_only[~np.isin(ref_only, observed)]
    assert len(ref_only) and p[ref_only, 0].max() < 1e-6
    with pytest.raises(ValueError, match="error"):
        composite_alt_prob(panel, query, observed, cand, np.linspace(0, 1, n_var), ne=500.0, error=0.6, max_states=8)


def test_slots_equal_the_composite_model_when_no_slot_is_ever_reused():
    from omicslm.impute.ragbert.composite import slots_alt_prob

    panel, query = _panel(seed=1)
    n_var = panel.shape[0]
    observed = np.arange(0, n_var, 4)
    windows = np.array([[s, min(n_var, s + 64)] for s in range(0, n_var, 48)])
    rng = np.random.default_rng(2)
    cand = np.stack([np.stack([rng.choice(panel.shape[1], 8, replace=False) for _ in range(query.shape[1])])
                     for _ in windows])  # 8 of 40 per window: sets differ between windows
    cm = np.linspace(0, 2.0, n_var)
    whole = composite_alt_prob(panel, query, observed, cand, cm, ne=1000.0, error=0.01, max_states=40, query_batch=4)
    slots = slots_alt_prob(panel, query, observed, cand, windows, cm, ne=1000.0, error=0.01, n_slots=40, query_batch=4)
    assert np.abs(slots - whole).max() < 1e-5  # 40 slots hold every candidate: the same states, the same HMM


def test_slots_keep_every_windows_candidates_and_evict_the_least_recently_retrieved():
    from omicslm.impute.ragbert.composite import slot_states

    cand = np.array([[[1, 2]], [[3, 1]], [[4, 5]], [[1, 4]]])  # (windows 4, query 1, k 2)
    slot_hap, valid = slot_states(cand, n_slots=3)
    assert valid.all()
    held = [set(slot_hap[w, 0].tolist()) for w in range(4)]
    for w in range(4):
        assert set(cand[w, 0]) <= held[w]  # a window's candidates are states while it is read
    # window 1: 3 fills the empty slot; window 2: 4 and 5 evict 2 (last retrieved in window 0) and 3 or 1 ...
    assert held[1] == {1, 2, 3} and held[2] >= {4, 5} and 2 not in held[2]
    # ... and 1 (retrieved in window 1, like 3) stays only if 3 went first: least recently used, ties by slot
    assert held[0] == {1, 2, 3}  # the third slot copies its first column before it was filled
    with pytest.raises(ValueError, match="at least the candidates per window"):
        slot_states(cand, n_slots=1)
    slot_hap, valid = slot_states(np.array([[[1, -1]], [[1, -1]]]), n_slots=3)  # fewer columns than slots
    assert valid[0].tolist() == [True, False, False] and (slot_hap[:, 0, 0] == 1).all()


def test_slots_fewer_than_the_chunks_candidates_impute_as_well_as_all_of_them():
    from omicslm.impute.ragbert.composite import slots_alt_prob

    panel, query = _panel(seed=3, n_var=600, n_panel=60, n_q=8)
    n_var = panel.shape[0]
    observed = np.arange(0, n_var, 3)
    windows = np.array([[s, min(n_var, s + 48)] for s in range(0, n_var, 36)])
    # each window's 6 nearest panel haplotypes at its array sites (what FAISS retrieves)
    cand = np.empty((len(windows), query.shape[1], 6), dtype=np.int64)
    for w, (s, e) in enumerate(windows):
        obs = observed[(observed >= s) & (observed < e)]
        dist = (panel[obs][:, None, :] != query[obs][:, :, None]).sum(axis=0)  # (queries, panel)
        cand[w] = np.argsort(dist, axis=1, kind="stable")[:, :6]
    assert len(np.unique(cand[:, 0])) > 12  # the chunk retrieves more haplotypes than there are slots
    cm = np.linspace(0, 3.0, n_var)
    hidden = np.setdiff1d(np.arange(n_var), observed)
    whole = composite_alt_prob(panel, query, observed, cand, cm, ne=1000.0, error=0.01, max_states=60)
    slots = slots_alt_prob(panel, query, observed, cand, windows, cm, ne=1000.0, error=0.01, n_slots=12)
    err_whole = np.abs(whole[hidden] - query[hidden]).mean()
    err_slots = np.abs(slots[hidden] - query[hidden]).mean()
    assert err_slots < 0.05 and err_slots <= 1.35 * err_whole, (err_slots, err_whole)
    # with the same 12 states, the chunk's 12 most often retrieved haplotypes do worse than local slots
    capped = composite_alt_prob(panel, query, observed, cand, cm, ne=1000.0, error=0.01, max_states=12)
    assert err_slots < np.abs(capped[hidden] - query[hidden]).mean()


def test_slots_read_out_from_carriers_and_from_the_slots_alleles_agree(monkeypatch):
    from omicslm.impute.ragbert import composite

    panel, query = _panel(seed=4, n_var=200, n_panel=80, n_q=4)
    observed = np.arange(0, 200, 4)
    windows = np.array([[s, min(200, s + 40)] for s in range(0, 200, 30)])
    rng = np.random.default_rng(5)
    cand = np.stack([np.stack([rng.choice(80, 6, replace=False) for _ in range(4)]) for _ in windows])
    kw = dict(ne=1000.0, error=0.01, n_slots=10)
    cm = np.linspace(0, 1.0, 200)
    monkeypatch.setattr(composite, "_DENSE_READ_OUT", 1e9)  # always the carriers
    carriers = composite.slots_alt_prob(panel, query, observed, cand, windows, cm, engine="torch", **kw)
    monkeypatch.setattr(composite, "_DENSE_READ_OUT", 0.0)  # always the slots' alleles
    dense = composite.slots_alt_prob(panel, query, observed, cand, windows, cm, engine="torch", **kw)
    assert np.abs(carriers - dense).max() < 1e-5


def test_compiled_slots_are_the_same_slots_as_slot_states():
    from omicslm.impute.ragbert.composite import slot_states
    from omicslm.impute.ragbert.fused import query_slots

    rng = np.random.default_rng(6)
    n_panel = 50
    # 30 windows x 7 queries x 8 candidates, some missing (-1); slots from 8 (every one reused) to 64 (some empty)
    cand = np.stack([np.stack([rng.choice(n_panel, 8, replace=False) for _ in range(7)]) for _ in range(30)])
    cand[rng.random(cand.shape) < 0.1] = -1
    cand[:, 6] = np.where(np.arange(8) < 2, cand[:, 6], -1)  # a query with few distinct candidates
    for n_slots in (8, 13, 64):
        want_hap, want_valid = slot_states(cand, n_slots=n_slots)
        for q in range(cand.shape[1]):
            hap, valid = query_slots(np.ascontiguousarray(cand[:, q], dtype=np.int32), n_slots, n_panel)
            assert np.array_equal(valid, want_valid[q]), (n_slots, q)
            assert np.array_equal(hap, want_hap[:, q]), (n_slots, q)


@pytest.mark.parametrize("n_slots, window", [(10, 40), (40, 40), (40, 400)])
def test_compiled_cpu_engine_equals_the_torch_model(n_slots, window):
    from omicslm.impute.ragbert.composite import slots_alt_prob

    panel, query = _panel(seed=7, n_var=400, n_panel=70, n_q=9)
    observed = np.sort(np.random.default_rng(8).choice(400, 90, replace=False))
    # windows of ~9 array sites, or one of 90 (its alleles span two 64-bit words)
    windows = np.array([[s, min(400, s + window)] for s in range(0, 400, window)])
    rng = np.random.default_rng(9)
    cand = np.stack([np.stack([rng.choice(70, 8, replace=False) for _ in range(9)]) for _ in windows])
    cand[:, 0, 4:] = -1  # query 0: fewer candidates (empty slots)
    cm = np.sort(rng.uniform(0, 2.0, 400))
    kw = dict(ne=1000.0, error=0.01, n_slots=n_slots, query_batch=4)
    torch_p = slots_alt_prob(panel, query, observed, cand, windows, cm, engine="torch", **kw)
    fused_p = slots_alt_prob(panel, query, observed, cand, windows, cm, engine="fused", **kw)
    assert fused_p.shape == torch_p.shape == query.shape
    assert np.abs(fused_p - torch_p).max() < 1e-5
    assert np.array_equal(slots_alt_prob(panel, query, observed, cand, windows, cm, **kw), fused_p)  # auto on CPU
    hidden = np.setdiff1d(np.arange(400), observed)
    af = panel[hidden].mean(axis=1, keepdims=True)  # and it imputes: better than the panel frequency
    assert np.abs(fused_p[hidden] - query[hidden]).mean() < 0.75 * np.abs(af - query[hidden]).mean()
    with pytest.raises(ValueError, match="engine"):
        slots_alt_prob(panel, query, observed, cand, windows, cm, engine="numpy", **kw)
    # the read-out may skip slots of negligible posterior: it drops at most the tolerance
    loose = slots_alt_prob(panel, query, observed, cand, windows, cm, readout_tolerance=1e-3, **kw)
    assert np.abs(loose - fused_p).max() <= 1e-3 + 1e-6


def test_word_layout_packs_each_windows_array_sites_64_to_a_word():
    from omicslm.impute.ragbert.fused import pack_words, word_layout

    seg_obs = np.array([0] * 70 + [1] * 3 + [3] * 64 + [4])
    word_of, off_of, n_words = word_layout(seg_obs)
    assert n_words == 5  # window 0: 64 + 6 sites; window 1; window 3: exactly 64; window 4
    assert word_of.tolist() == [0] * 64 + [1] * 6 + [2] * 3 + [3] * 64 + [4]
    assert off_of.tolist() == list(range(64)) + list(range(6)) + list(range(3)) + list(range(64)) + [0]
    hap = np.random.default_rng(0).integers(0, 2, size=(len(seg_obs), 5)).astype(np.int8)
    words = pack_words(hap, word_of, off_of, n_words)
    unpacked = (words[word_of] >> off_of[:, None].astype(np.uint64)) & np.uint64(1)
    assert np.array_equal(unpacked.astype(np.int8), hap)
