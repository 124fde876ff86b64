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
