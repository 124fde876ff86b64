"""The slot copying model on CPU threads in one compiled pass per query haplotype (numba).

:func:`omicslm.impute.ragbert.composite.slots_alt_prob` in torch builds, per batch of queries, the
copied alleles (queries x array sites x slots), the emissions, every step of the forward-backward
and the read-out as separate tensors: on CPU most of its time goes to making and reading those
temporaries and to a Python step per site. Here the same model runs as one loop nest per query
haplotype, compiled once (``cache=True``: the machine code is kept beside this file, so later
processes start at once) and spread over the rule's threads (``threads``):

* forward: the alleles of the array sites are packed 64 to a word per panel haplotype and window
  (:func:`pack_words`, once for all queries); where a window starts, each slot's word is XORed with
  the query's, and at each array site the emission of each slot is one bit of that mismatch word.
  The switch spreads ``r`` over the query's valid slots and the step is renormalised (float32, as
  the torch model). The loops over slots carry no gather, so they compile to vector instructions
  (the float sums may be reassociated: ``FASTMATH``);
* backward: the same recursion from the last array site, turning each stored forward row into the
  state posterior in place;
* read-out: the ALT probability of every site is the posterior, interpolated linearly in genetic
  position between the bracketing array sites, summed over the slots whose copied haplotype (in
  the site's window) carries ALT. Only slots whose posterior at either bracketing site exceeds
  ``tolerance / slots`` are read (usually a few of the hundreds): the ALT probability dropped is at
  most ``tolerance`` (``impute.model.copying.readout_tolerance``).

Memory per thread: array sites x slots float32 (the forward rows of one query). The result equals
the torch model's within float32 rounding plus ``tolerance`` (a test compares them). CUDA keeps the
torch code.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from omicslm.io.threads import set_numba_threads

# float sums may be reassociated (vectorised) and products contracted; NaN and infinity keep their meaning
FASTMATH = {"reassoc", "contract", "nsz", "arcp"}


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
def _one_query(q: int, cand, n_slots: int, n_panel: int, panel_words, query_words, word_of, off_of, seg_obs, switch,
               panel_hap, seg, li, ri, t, bounds, err: float, min_post: float, out) -> None:
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
    post = _posteriors(q, slot_hap, validf, k, panel_words, query_words, word_of, off_of, seg_obs, switch, err)
    _read_out(q, post, slot_hap, panel_hap, seg, li, ri, t, bounds, min_post, out)


@njit(cache=True, nogil=True)
def _mismatch(w: int, q: int, cols, panel_words, query_words, mm) -> None:
    """``mm[s]``: the bits of word ``w`` where the column in slot ``s`` differs from query ``q``."""
    qw = query_words[w, q]
    for s in range(cols.shape[0]):
        mm[s] = panel_words[w, cols[s]] ^ qw


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def _posteriors(q: int, slot_hap, validf, k: int, panel_words, query_words, word_of, off_of, seg_obs, switch,
                err: float):
    """Forward-backward of query ``q`` over its array sites: the state posterior (n_obs, slots) float32, each row
    normalised; ``validf`` is 1 in the ``k`` filled slots, 0 elsewhere. Array site ``a`` is bit ``off_of[a]`` of
    word ``word_of[a]`` (:func:`word_layout`)."""
    n_obs = seg_obs.shape[0]
    m = slot_hap.shape[1]
    keep = np.float32(1.0 - err)           # emission of a match; a mismatch: keep - diff = err
    diff = np.float32(1.0 - 2.0 * err)
    one = np.uint64(1)
    inv_k = np.float32(1.0 / k)
    post = np.empty((n_obs, m), dtype=np.float32)
    mm = np.empty(m, dtype=np.uint64)
    # forward: post[a] holds the normalised forward probabilities after site a
    cur = -1
    for a in range(n_obs):
        if word_of[a] != cur:
            cur = word_of[a]
            _mismatch(cur, q, slot_hap[seg_obs[a]], panel_words, query_words, mm)
        off = np.uint64(off_of[a])
        total = np.float32(0.0)
        if a == 0:
            for s in range(m):
                v = (keep - diff * np.float32((mm[s] >> off) & one)) * validf[s]
                post[0, s] = v
                total += v
        else:
            r = switch[a - 1]
            stay = np.float32(1.0) - r
            spread = r * inv_k
            for s in range(m):
                v = (post[a - 1, s] * stay + spread) * (keep - diff * np.float32((mm[s] >> off) & one)) * validf[s]
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
    cur = -1
    for a in range(n_obs - 2, -1, -1):
        if word_of[a + 1] != cur:
            cur = word_of[a + 1]
            _mismatch(cur, q, slot_hap[seg_obs[a + 1]], panel_words, query_words, mm)
        off = np.uint64(off_of[a + 1])
        r = switch[a]
        stay = np.float32(1.0) - r
        ysum = np.float32(0.0)
        for s in range(m):
            v = b[s] * (keep - diff * np.float32((mm[s] >> off) & one)) * validf[s]
            b[s] = v
            ysum += v
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


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def _read_out(q: int, post, slot_hap, panel_hap, seg, li, ri, t, bounds, min_post: float, out) -> None:
    """ALT probability of every site of query ``q`` into ``out[q]``: the posterior interpolated between the
    bracketing array sites, summed over the slots whose copied haplotype carries ALT, of the slots whose posterior
    exceeds ``min_post`` at either bracketing site."""
    m = slot_hap.shape[1]
    lo = np.empty(m, dtype=np.float32)
    hi = np.empty(m, dtype=np.float32)
    cols = np.empty(m, dtype=np.int64)
    floor = np.float32(min_post)
    # read-out, stretch by stretch of sites with the same bracketing array sites and window
    for k in range(len(bounds) - 1):
        j0 = bounds[k]
        g = seg[j0]
        p_lo = post[li[j0]]
        p_hi = post[ri[j0]]
        n = 0
        for s in range(m):  # an empty slot's posterior is 0
            if p_lo[s] > floor or p_hi[s] > floor:
                lo[n] = p_lo[s]
                hi[n] = p_hi[s]
                cols[n] = slot_hap[g, s]
                n += 1
        for j in range(j0, bounds[k + 1]):
            row = panel_hap[j]
            acc_lo = np.float32(0.0)
            acc_hi = np.float32(0.0)
            for i in range(n):
                x = np.float32(_bit(row, cols[i]))
                acc_lo += lo[i] * x
                acc_hi += hi[i] * x
            w_hi = t[j]
            acc = acc_lo * (np.float32(1.0) - w_hi) + acc_hi * w_hi
            out[q, j] = min(max(acc, np.float32(0.0)), np.float32(1.0))


@njit(parallel=True, cache=True)
def _all_queries(cand, n_slots: int, n_panel: int, panel_words, query_words, word_of, off_of, seg_obs, switch, panel_hap,
                 seg, li, ri, t, bounds, err: float, min_post: float, out) -> None:
    for q in prange(cand.shape[1]):
        _one_query(q, cand, n_slots, n_panel, panel_words, query_words, word_of, off_of, seg_obs, switch, panel_hap,
                   seg, li, ri, t, bounds, err, min_post, out)


def word_layout(seg_obs: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Word and bit of each array site when the array sites of each window are packed 64 to a word.

    ``seg_obs`` (n_obs,) nondecreasing: the window of each array site. A word holds array sites of one window only
    (a slot's column is fixed within a window), so a window of more than 64 array sites spans several words.
    Returns ``word_of``, ``off_of`` (n_obs,) int64 and the number of words.
    """
    seg_obs = np.asarray(seg_obs, dtype=np.int64)
    n = len(seg_obs)
    if n == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), 0
    first = np.r_[0, np.flatnonzero(np.diff(seg_obs)) + 1]          # first array site of each window
    start = np.repeat(first, np.diff(np.r_[first, n]))              # ... of each site's window
    rank = np.arange(n) - start
    new = np.r_[True, (np.diff(seg_obs) != 0) | (rank[1:] % 64 == 0)]
    word_of = np.cumsum(new) - 1
    return word_of.astype(np.int64), (rank % 64).astype(np.int64), int(word_of[-1]) + 1


@njit(cache=True)
def pack_words(hap, word_of, off_of, n_words: int):
    """(n_words, n_columns) uint64: bit ``off_of[a]`` of word ``word_of[a]`` is column ``c``'s allele at row ``a``
    of ``hap`` (n_obs, n_columns) int8."""
    n_obs, n_col = hap.shape
    out = np.zeros((n_words, n_col), dtype=np.uint64)
    for a in range(n_obs):
        w = word_of[a]
        bit = np.uint64(1) << np.uint64(off_of[a])
        for c in range(n_col):
            if hap[a, c]:
                out[w, c] |= bit
    return out


def slots_alt_prob_cpu(panel_hap: np.ndarray, query_hap: np.ndarray, obs_idx: np.ndarray, candidates: np.ndarray,
                       switch: np.ndarray, seg: np.ndarray, li: np.ndarray, ri: np.ndarray, t: np.ndarray, *,
                       error: float, n_slots: int, tolerance: float = 0.0, threads: int | None = None) -> np.ndarray:
    """ALT probability (n_variants, n_queries) of the slot copying model, compiled, on ``threads`` threads (None:
    numba's current number).

    The arguments are those :func:`~omicslm.impute.ragbert.composite.slots_alt_prob` takes or derives:
    the panel and query haplotypes, the array sites, the candidates per window, the switch
    probabilities between array sites, each site's window and its bracketing array sites with the
    weight on the right one. ``tolerance``: the most ALT probability the read-out may drop by skipping
    slots of negligible posterior (0: read every slot).
    """
    if threads is not None:
        set_numba_threads(threads)
    n_var, n_q = query_hap.shape
    panel_hap = np.ascontiguousarray(panel_hap, dtype=np.int8)
    n_panel = panel_hap.shape[1]
    # alleles packed 8 to a byte for the read-out: every query reads the whole panel, and 1/8 of it stays in the caches
    panel_bits = np.packbits(panel_hap, axis=1, bitorder="little")
    seg = np.ascontiguousarray(seg, dtype=np.int64)
    seg_obs = np.ascontiguousarray(seg[obs_idx])
    word_of, off_of, n_words = word_layout(seg_obs)
    panel_words = pack_words(np.ascontiguousarray(panel_hap[obs_idx]), word_of, off_of, n_words)
    query_words = pack_words(np.ascontiguousarray(query_hap[obs_idx], dtype=np.int8), word_of, off_of, n_words)
    li, ri = (np.ascontiguousarray(a, dtype=np.int64) for a in (li, ri))
    t = np.ascontiguousarray(t, dtype=np.float32)
    switch = np.ascontiguousarray(switch, dtype=np.float32)
    if len(switch) == 0:
        switch = np.zeros(1, dtype=np.float32)
    # stretches of sites with the same bracketing array sites and window
    change = (np.diff(li) != 0) | (np.diff(ri) != 0) | (np.diff(seg) != 0)
    bounds = np.r_[0, np.flatnonzero(change) + 1, n_var].astype(np.int64)
    out = np.empty((n_q, n_var), dtype=np.float32)
    # a slot whose posterior is at most tolerance / slots at both bracketing sites adds at most that much
    min_post = float(tolerance) / max(1, int(n_slots)) if tolerance > 0 else -1.0
    _all_queries(np.ascontiguousarray(candidates, dtype=np.int32), int(n_slots), n_panel, panel_words, query_words,
                 word_of, off_of, seg_obs, switch, panel_bits, seg, li, ri, t, bounds, float(error), min_post, out)
    return np.ascontiguousarray(out.T)
