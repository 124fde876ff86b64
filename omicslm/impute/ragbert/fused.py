"""The slot copying model on CPU threads in one compiled pass per query haplotype (numba).

:func:`omicslm.impute.ragbert.composite.slots_alt_prob` in torch builds, per batch of queries, the
copied alleles (queries x array sites x slots), the emissions, every step of the forward-backward
and the read-out as separate tensors: on CPU most of its time goes to making and reading those
temporaries and to a Python step per site. Here the same model runs as one loop nest per query
haplotype, compiled once (``cache=True``: the machine code is kept beside this file, so later
processes start at once) and spread over the rule's threads (``torch.get_num_threads()``):

* forward: at each array site the emission of each slot is read off the panel allele the slot
  copies in the site's window (no emission tensor), the switch spreads ``r`` over the query's
  valid slots, and the step is renormalised (float32, as the torch model);
* backward: the same recursion from the last array site, turning each stored forward row into the
  state posterior in place;
* read-out: the ALT probability of every site is the posterior, interpolated linearly in genetic
  position between the bracketing array sites, summed over the slots whose copied haplotype (in
  the site's window) carries ALT.

Memory per thread: array sites x slots float32 (the forward rows of one query). The result equals
the torch model's within float32 rounding (a test compares them). CUDA keeps the torch code.
"""

from __future__ import annotations

import numba
import numpy as np
import torch
from numba import njit, prange


@njit(cache=True, nogil=True, inline="always")
def _bit(row, c):
    """Allele of panel haplotype ``c`` in a row of alleles packed 8 to a byte (``np.packbits(..., bitorder="little")``)."""
    return (row[c >> 3] >> (c & 7)) & 1


@njit(cache=True, nogil=True)
def query_slots(cand, n_slots: int, n_panel: int):
    """:func:`~omicslm.impute.ragbert.composite.slot_states` of one query, compiled: the same slots, ties and fill.

    ``cand`` (n_windows, n_candidates) int: the query's candidates per window, best first (-1: none).
    Returns ``slot_hap`` (n_windows, n_slots) int32 (0 in never-filled slots) and ``valid`` (n_slots,) bool.
    """
    n_w, n_c = cand.shape
    where = np.full(n_panel, -1, dtype=np.int32)      # slot of each panel column, -1: none
    hap = np.full(n_slots, -1, dtype=np.int32)        # column in each slot, -1: empty
    first = np.full(n_slots, -1, dtype=np.int64)      # window a slot was first filled
    # the slots by (last window their column was a candidate, slot): empty ones first, least recently used next
    order = np.arange(n_slots)
    spare = np.empty(n_slots, dtype=np.int64)
    touched = np.zeros(n_slots, dtype=np.bool_)
    now = np.empty(n_c, dtype=np.int64)               # the slots of this window's candidates
    fresh = np.empty(n_c, dtype=np.int32)
    slot_hap = np.empty((n_w, n_slots), dtype=np.int32)
    for w in range(n_w):
        n_new = 0
        n_now = 0
        for c in range(n_c):
            col = cand[w, c]
            if col < 0:
                continue
            s = where[col]
            if s >= 0:
                touched[s] = True
                now[n_now] = s
                n_now += 1
            else:
                fresh[n_new] = col
                n_new += 1
        # new candidates take the first untouched slots in that order, in candidate order
        i = 0
        for o in range(n_slots):
            if i == n_new:
                break
            ts = order[o]
            if touched[ts]:
                continue
            if hap[ts] >= 0:
                where[hap[ts]] = -1
            hap[ts] = fresh[i]
            where[fresh[i]] = ts
            if first[ts] < 0:
                first[ts] = w
            touched[ts] = True
            now[n_now] = ts
            n_now += 1
            i += 1
        # this window's slots move to the end of the order, by slot
        n_keep = 0
        for o in range(n_slots):
            if not touched[order[o]]:
                spare[n_keep] = order[o]
                n_keep += 1
        tail = np.sort(now[:n_now])
        for o in range(n_now):
            spare[n_keep + o] = tail[o]
            touched[tail[o]] = False
        order, spare = spare, order
        for s in range(n_slots):
            slot_hap[w, s] = hap[s]
    valid = first >= 0
    for s in range(n_slots):
        if not valid[s]:
            for w in range(n_w):
                slot_hap[w, s] = 0
        else:
            for w in range(first[s]):  # before its first fill a slot copies its first column
                slot_hap[w, s] = slot_hap[first[s], s]
    return slot_hap, valid


@njit(cache=True, nogil=True)
def _one_query(q: int, cand, n_slots: int, n_panel: int, panel_obs, query_obs, seg_obs, switch, panel_hap, seg, li, ri, t,
               bounds, err: float, out) -> None:
    """Slots, forward-backward and read-out of query ``q``; its ALT probabilities go to ``out[q]``."""
    n_var = panel_hap.shape[0]
    m = n_slots
    slot_hap, valid = query_slots(cand[:, q, :], n_slots, n_panel)
    validf = np.zeros(m, dtype=np.float32)
    k = 0
    for s in range(m):
        if valid[s]:
            validf[s] = np.float32(1.0)
            k += 1
    if k == 0:
        for j in range(n_var):
            out[q, j] = np.float32(0.0)
        return
    post = _posteriors(q, slot_hap, validf, k, panel_obs, query_obs, seg_obs, switch, err)
    _read_out(q, post, slot_hap, panel_hap, seg, li, ri, t, bounds, out)


@njit(cache=True, nogil=True)
def _posteriors(q: int, slot_hap, validf, k: int, panel_obs, query_obs, seg_obs, switch, err: float):
    """Forward-backward of query ``q`` over its array sites: the state posterior (n_obs, slots) float32, each row
    normalised; ``validf`` is 1 in the ``k`` filled slots, 0 elsewhere."""
    n_obs = panel_obs.shape[0]
    m = slot_hap.shape[1]
    keep = np.float32(1.0 - err)
    miss = np.float32(err)
    diff = keep - miss
    inv_k = np.float32(1.0 / k)
    post = np.empty((n_obs, m), dtype=np.float32)
    # forward: post[a] holds the normalised forward probabilities after site a
    g = seg_obs[0]
    obs = query_obs[0, q]
    total = np.float32(0.0)
    for s in range(m):
        v = (miss + diff * np.float32(_bit(panel_obs[0], slot_hap[g, s]) == obs)) * validf[s]
        post[0, s] = v
        total += v
    inv = np.float32(1.0) / total
    for s in range(m):
        post[0, s] *= inv
    for a in range(1, n_obs):
        g = seg_obs[a]
        r = switch[a - 1]
        stay = np.float32(1.0) - r
        spread = r * inv_k
        obs = query_obs[a, q]
        total = np.float32(0.0)
        for s in range(m):
            e = (miss + diff * np.float32(_bit(panel_obs[a], slot_hap[g, s]) == obs)) * validf[s]
            v = (post[a - 1, s] * stay + spread) * e
            post[a, s] = v
            total += v
        inv = np.float32(1.0) / total
        for s in range(m):
            post[a, s] *= inv
    # backward: b is the normalised backward vector at site a; the posterior is post[a] * b, renormalised
    b = np.empty(m, dtype=np.float32)
    total = np.float32(0.0)
    for s in range(m):
        b[s] = validf[s] * inv_k
        post[n_obs - 1, s] *= b[s]
        total += post[n_obs - 1, s]
    inv = np.float32(1.0) / total
    for s in range(m):
        post[n_obs - 1, s] *= inv
    for a in range(n_obs - 2, -1, -1):
        g = seg_obs[a + 1]
        r = switch[a]
        stay = np.float32(1.0) - r
        obs = query_obs[a + 1, q]
        ysum = np.float32(0.0)
        for s in range(m):
            e = (miss + diff * np.float32(_bit(panel_obs[a + 1], slot_hap[g, s]) == obs)) * validf[s]
            b[s] *= e
            ysum += b[s]
        spread = r * ysum * inv_k
        bsum = np.float32(0.0)
        for s in range(m):
            v = (b[s] * stay + spread) * validf[s]
            b[s] = v
            bsum += v
        inv_b = np.float32(1.0) / bsum
        total = np.float32(0.0)
        for s in range(m):
            b[s] *= inv_b
            v = post[a, s] * b[s]
            post[a, s] = v
            total += v
        inv = np.float32(1.0) / total
        for s in range(m):
            post[a, s] *= inv
    return post


@njit(cache=True, nogil=True)
def _read_out(q: int, post, slot_hap, panel_hap, seg, li, ri, t, bounds, out) -> None:
    """ALT probability of every site of query ``q`` into ``out[q]``: the posterior interpolated between the
    bracketing array sites, summed over the slots whose copied haplotype carries ALT."""
    m = slot_hap.shape[1]
    # read-out, stretch by stretch of sites with the same bracketing array sites and window
    for k in range(len(bounds) - 1):
        j0 = bounds[k]
        g = seg[j0]
        p_lo = post[li[j0]]
        p_hi = post[ri[j0]]
        cols = slot_hap[g]
        for j in range(j0, bounds[k + 1]):
            row = panel_hap[j]
            acc_lo = np.float32(0.0)
            acc_hi = np.float32(0.0)
            for s in range(m):  # an empty slot's posterior is 0
                x = np.float32(_bit(row, cols[s]))
                acc_lo += p_lo[s] * x
                acc_hi += p_hi[s] * x
            w_hi = t[j]
            acc = acc_lo * (np.float32(1.0) - w_hi) + acc_hi * w_hi
            out[q, j] = min(max(acc, np.float32(0.0)), np.float32(1.0))


@njit(parallel=True, cache=True)
def _all_queries(cand, n_slots: int, n_panel: int, panel_obs, query_obs, seg_obs, switch, panel_hap, seg, li, ri, t, bounds,
                 err: float, out) -> None:
    for q in prange(cand.shape[1]):
        _one_query(q, cand, n_slots, n_panel, panel_obs, query_obs, seg_obs, switch, panel_hap, seg, li, ri, t, bounds,
                   err, out)


def slots_alt_prob_cpu(panel_hap: np.ndarray, query_hap: np.ndarray, obs_idx: np.ndarray, candidates: np.ndarray,
                       switch: np.ndarray, seg: np.ndarray, li: np.ndarray, ri: np.ndarray, t: np.ndarray, *,
                       error: float, n_slots: int) -> np.ndarray:
    """ALT probability (n_variants, n_queries) of the slot copying model, compiled, on ``torch.get_num_threads()`` threads.

    The arguments are those :func:`~omicslm.impute.ragbert.composite.slots_alt_prob` takes or derives:
    the panel and query haplotypes, the array sites, the candidates per window, the switch
    probabilities between array sites, each site's window and its bracketing array sites with the
    weight on the right one.
    """
    numba.set_num_threads(max(1, min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS)))
    n_var, n_q = query_hap.shape
    panel_hap = np.ascontiguousarray(panel_hap, dtype=np.int8)
    n_panel = panel_hap.shape[1]
    # alleles packed 8 to a byte: every query reads the whole panel, and 1/8 of it stays in the caches
    panel_bits = np.packbits(panel_hap, axis=1, bitorder="little")
    panel_obs = np.ascontiguousarray(panel_bits[obs_idx])
    query_obs = np.ascontiguousarray(query_hap[obs_idx], dtype=np.int8)
    seg = np.ascontiguousarray(seg, dtype=np.int64)
    seg_obs = np.ascontiguousarray(seg[obs_idx])
    li, ri = (np.ascontiguousarray(a, dtype=np.int64) for a in (li, ri))
    t = np.ascontiguousarray(t, dtype=np.float32)
    switch = np.ascontiguousarray(switch, dtype=np.float32)
    if len(switch) == 0:
        switch = np.zeros(1, dtype=np.float32)
    # stretches of sites with the same bracketing array sites and window
    change = (np.diff(li) != 0) | (np.diff(ri) != 0) | (np.diff(seg) != 0)
    bounds = np.r_[0, np.flatnonzero(change) + 1, n_var].astype(np.int64)
    out = np.empty((n_q, n_var), dtype=np.float32)
    _all_queries(np.ascontiguousarray(candidates, dtype=np.int32), int(n_slots), n_panel, panel_obs, query_obs, seg_obs,
                 switch, panel_bits, seg, li, ri, t, bounds, float(error), out)
    return np.ascontiguousarray(out.T)
