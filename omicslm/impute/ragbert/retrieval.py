"""Retrieve, per window, the K panel haplotypes most similar to a query at the observed sites.

One FAISS index per window over the panel haplotypes' alleles at the window's *query
sites* (float32 0/1 vectors, L2 distance = number of mismatching alleles). The query
sites of a window are the genotyping-array sites inside it, widened by ``flank_sites``
sites on both sides: ~10 array sites alone leave many panel haplotypes tied at distance
0, and the flanks break those ties with nearby linkage. A window with no array site even
after widening uses the query sites of the nearest window that has some (documented
fallback; such windows only arise with very sparse arrays).

Index type is chosen by size: exact :class:`faiss.IndexFlatL2` below
``ivf_min_haplotypes`` panel haplotypes, else :class:`faiss.IndexIVFFlat` with ``nlist``
lists trained on the panel vectors (``nprobe`` lists searched). Ties are broken at random
(a seeded permutation of the panel per window) instead of by panel order, so low sample
indices are not favoured.

While training, the panel and the queries are the same haplotypes: a query must never
retrieve itself or its *partner* (the other haplotype of the same sample) — either would
hand the model the answer. ``exclude`` lists those ids; the search asks for
``K + n_exclude`` neighbours and drops them.
"""

from __future__ import annotations

import logging

import faiss
import numba
import numpy as np
from tqdm import tqdm

log = logging.getLogger(__name__)


def window_query_sites(windows: np.ndarray, observed_idx: np.ndarray, *, flank_sites: int) -> list[np.ndarray]:
    """Site indices each window's retrieval compares haplotypes on.

    Parameters
    ----------
    windows : ndarray, int, shape (n_windows, 2)
        ``[start, end)`` site indices.
    observed_idx : ndarray, int, shape (n_observed,)
        Sorted indices of the array (observed) sites.
    flank_sites : int
        Sites added on both sides of the window before picking its array sites.

    Returns
    -------
    list of ndarray, int64, one per window
    """
    observed_idx = np.sort(np.asarray(observed_idx, dtype=np.int64))
    if len(observed_idx) == 0:
        raise ValueError("retrieval needs at least one observed (array) site")
    out: list[np.ndarray | None] = []
    for s, e in windows:
        lo = np.searchsorted(observed_idx, s - flank_sites)
        hi = np.searchsorted(observed_idx, e + flank_sites)
        out.append(observed_idx[lo:hi] if hi > lo else None)
    have = np.array([o is not None for o in out])
    if not have.all():
        centres = windows.mean(axis=1)
        donors = np.flatnonzero(have)
        for w in np.flatnonzero(~have):
            nearest = donors[np.argmin(np.abs(centres[donors] - centres[w]))]
            out[w] = out[nearest]
        log.info("%d window(s) without array sites retrieve on their nearest window's sites", int((~have).sum()))
    return out  # type: ignore[return-value]


def window_site_weights(windows: np.ndarray, query_sites: list[np.ndarray], *, decay_sites: float | None
                        ) -> list[np.ndarray] | None:
    """Weight of every query site in its window's distance: 1 inside the window, decaying outside.

    Linkage with the window's alleles fades with distance, so a mismatch at a flanking array site
    far from the window says less about the haplotype inside it than one next to it (the idea of
    the Li-Stephens copying model, where a long match around a site is what counts). The weight is
    ``exp(-d / decay_sites)`` with ``d`` the distance in sites to the window's nearest edge; FAISS
    then searches the weighted Hamming distance ``sum w_i (q_i - p_i)^2`` (vectors scaled by
    ``sqrt(w)``).

    Parameters
    ----------
    windows : ndarray, int, shape (n_windows, 2)
    query_sites : list of ndarray, from :func:`window_query_sites`
    decay_sites : float or None
        Decay length in sites; ``None`` or 0 = all sites weigh 1 (plain Hamming).

    Returns
    -------
    list of ndarray, float32, one per window, or None when unweighted
    """
    if not decay_sites:
        return None
    out = []
    for (s, e), sites in zip(windows, query_sites):
        d = np.maximum(0, np.maximum(s - sites, sites - (e - 1)))
        out.append(np.exp(-d / float(decay_sites)).astype(np.float32))
    return out


def build_index(vectors: np.ndarray, *, ivf_min_haplotypes: int, nlist: int, nprobe: int) -> faiss.Index:
    """An L2 index over ``vectors`` float32 (n, d): exact when n < ``ivf_min_haplotypes``, else IVF."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    n, d = vectors.shape
    if n < ivf_min_haplotypes:
        index = faiss.IndexFlatL2(d)
    else:
        # k-means needs several points per list; fewer lists than that would warn and degrade.
        lists = max(1, min(nlist, n // 39))
        if lists < nlist:
            log.warning("IVF: %d panel haplotypes support only %d lists (config nlist %d)", n, lists, nlist)
        quantizer = faiss.IndexFlatL2(d)
        index = faiss.IndexIVFFlat(quantizer, d, lists, faiss.METRIC_L2)
        index.train(vectors)
        index.nprobe = min(nprobe, lists)
    index.add(vectors)
    return index


def _check_k(k: int, n_panel: int, n_excluded: int) -> None:
    """ValueError naming the panel size unless 1 <= ``k`` <= the haplotypes left after ``n_excluded`` per query."""
    if k < 1 or k > n_panel - n_excluded:
        raise ValueError(f"K={k} nearest haplotypes requested but the panel has {n_panel} haplotypes"
                         + (f" ({n_panel - n_excluded} after excluding the query and its partner)" if n_excluded
                            else "") + "; lower impute.model.k")


def search(index: faiss.Index, queries: np.ndarray, k: int, exclude: np.ndarray | None = None) -> np.ndarray:
    """The ``k`` nearest indexed vectors of every query, never one listed in ``exclude``.

    Parameters
    ----------
    index : faiss.Index holding ``n`` vectors
    queries : ndarray, float32, shape (n_queries, d)
    k : int
    exclude : ndarray, int, shape (n_queries, m), optional
        Ids (rows of the index) each query must not get back.

    Returns
    -------
    ndarray, int64, shape (n_queries, k), nearest first.

    Raises
    ------
    ValueError
        ``k`` exceeds the number of indexed vectors left after exclusion.
    """
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    m = 0 if exclude is None else exclude.shape[1]
    _check_k(k, index.ntotal, m)
    want = min(k + m, index.ntotal)
    _, ids = index.search(queries, want)
    if (ids < 0).any() and isinstance(index, faiss.IndexIVF):
        # IVF probed too few lists to fill the result: search those queries exhaustively.
        rows = np.flatnonzero((ids < 0).any(axis=1))
        saved = index.nprobe
        index.nprobe = index.nlist
        _, ids[rows] = index.search(queries[rows], want)
        index.nprobe = saved
    if m:
        keep = (ids >= 0) & ~(ids[:, :, None] == exclude[:, None, :]).any(axis=2)
    else:
        keep = ids >= 0
    # Stable order of the kept ids, nearest first: sort on "not kept" then take k.
    order = np.argsort(~keep, axis=1, kind="stable")[:, :k]
    out = np.take_along_axis(ids, order, axis=1)
    if not np.take_along_axis(keep, order, axis=1).all():
        raise RuntimeError("FAISS returned fewer neighbours than requested")
    return out.astype(np.int64)


def retrieve_windows(
    panel_hap: np.ndarray,
    query_hap: np.ndarray,
    query_sites: list[np.ndarray],
    *,
    k: int,
    exclude: np.ndarray | None = None,
    weights: list[np.ndarray] | None = None,
    ivf_min_haplotypes: int,
    nlist: int,
    nprobe: int,
    seed: int,
    threads: int = 1,
) -> np.ndarray:
    """K nearest panel haplotypes of every query haplotype in every window.

    Parameters
    ----------
    panel_hap : ndarray, int8, shape (n_variants, n_panel)
        Panel haplotypes (columns).
    query_hap : ndarray, int8, shape (n_variants, n_queries)
        Query haplotypes; only their ``query_sites`` are read.
    query_sites : list of ndarray, one per window
        From :func:`window_query_sites`.
    k : int
    exclude : ndarray, int, shape (n_queries, m), optional
        Panel columns each query must not retrieve (itself and its partner in training).
    weights : list of ndarray, optional
        Per-window site weights (:func:`window_site_weights`); None = unweighted.
    ivf_min_haplotypes, nlist, nprobe : int
        Index choice, see :func:`build_index`.
    seed : int
        Seed of the per-window tie-breaking permutation.
    threads : int
        FAISS OpenMP threads.

    Returns
    -------
    ndarray, int32, shape (n_windows, n_queries, k)
        Panel column indices, nearest first.
    """
    faiss.omp_set_num_threads(max(1, int(threads)))
    n_panel = panel_hap.shape[1]
    out = np.empty((len(query_sites), query_hap.shape[1], k), dtype=np.int32)
    rng = np.random.default_rng(seed)
    kind = "exact" if n_panel < ivf_min_haplotypes else "IVF"
    plain_in_a_row = 0  # windows in a row where the grouped search would not pay: after 3 it is not tried again
    packed = PackedSites(panel_hap, np.unique(np.concatenate(query_sites))) if kind == "exact" else None
    for w, sites in enumerate(tqdm(query_sites, desc=f"retrieval ({kind}, K={k})", unit=" windows", mininterval=5)):
        perm = rng.permutation(n_panel)
        inverse = np.empty_like(perm)
        inverse[perm] = np.arange(n_panel)
        scale = np.float32(1.0) if weights is None else np.sqrt(weights[w])
        queries = np.ascontiguousarray(query_hap[sites].T * scale, dtype=np.float32)
        if kind == "exact" and plain_in_a_row < 3:
            run = packed.run(sites)
            if run is None:
                found = grouped_search(panel_hap[sites], scale, inverse, queries, k, exclude)
            else:  # the window's sites are a run of the packed ones: its keys and vectors are byte slices
                found = _grouped_search(packed.keys(*run), lambda first, r=run: packed.alleles(first, *r), scale,
                                        inverse, queries, k, exclude)
            if found is not None:
                out[w] = found
                plain_in_a_row = 0
                continue
            plain_in_a_row += 1  # a panel whose vectors are all distinct here is so in the next windows too
        vectors = np.ascontiguousarray(panel_hap[sites][:, perm].T * scale, dtype=np.float32)
        index = build_index(vectors, ivf_min_haplotypes=ivf_min_haplotypes, nlist=nlist, nprobe=nprobe)
        ex = None if exclude is None else inverse[exclude]
        ids = search(index, queries, k, ex)
        out[w] = perm[ids]
    return out


class PackedSites:
    """The panel's alleles at a sorted set of sites, 8 sites to a byte per haplotype (``np.packbits`` order).

    A window's query sites are a run of the array sites, so its grouping keys and the alleles of the haplotypes
    that stand for each group are slices of these bytes: nothing of the whole panel is copied per window.
    """

    def __init__(self, panel_hap: np.ndarray, sites: np.ndarray):
        self.sites = np.asarray(sites, dtype=np.int64)
        self.bits = np.packbits(np.ascontiguousarray(panel_hap[self.sites].T), axis=1)  # (n_panel, bytes)

    def run(self, sites: np.ndarray) -> tuple[int, int] | None:
        """``(start, stop)`` with ``self.sites[start:stop]`` equal to ``sites`` (sorted), or None."""
        if len(sites) == 0:
            return None
        start = int(np.searchsorted(self.sites, sites[0]))
        stop = start + len(sites)
        if stop > len(self.sites) or not np.array_equal(self.sites[start:stop], sites):
            return None
        return start, stop

    def keys(self, start: int, stop: int) -> np.ndarray:
        """(n_panel, bytes) uint8: each haplotype's alleles at sites ``start:stop``, the bits of the sites outside
        cleared, so two haplotypes share a key exactly when they share those alleles."""
        b0, b1 = start // 8, (stop + 7) // 8
        out = np.array(self.bits[:, b0:b1], order="C")
        out[:, 0] &= np.uint8(0xFF >> (start - 8 * b0))                 # the first bits are the first sites
        out[:, -1] &= np.uint8((0xFF << (8 * b1 - stop)) & 0xFF)
        return out

    def alleles(self, columns: np.ndarray, start: int, stop: int) -> np.ndarray:
        """(len(columns), stop - start) uint8: the alleles of those panel columns at sites ``start:stop``."""
        b0, b1 = start // 8, (stop + 7) // 8
        return np.unpackbits(self.bits[columns, b0:b1], axis=1)[:, start - 8 * b0:stop - 8 * b0]


GROUPED_MAX_FRACTION = 0.8  # distinct allele vectors / panel haplotypes above which the plain search is cheaper


def grouped_search(cols: np.ndarray, scale, rank: np.ndarray, queries: np.ndarray, k: int,
                   exclude: np.ndarray | None) -> np.ndarray | None:
    """Exact K nearest panel haplotypes, searching each distinct allele vector once; None when that saves little.

    A big panel repeats the same alleles at a window's query sites many times over (the scale panel:
    ~1,700 distinct vectors among 5,232 haplotypes), and every copy is at the same distance from a
    query. So the distinct vectors are searched (FAISS, exact) and each is expanded to its
    haplotypes; the order is that of the plain search over the permuted panel, distance first and
    then ``rank`` (the haplotype's place in the window's tie-breaking permutation), across every
    haplotype at the boundary distance: a query whose boundary run of equal distances may go on past
    the vectors returned is searched again, wider.

    Parameters
    ----------
    cols : ndarray, int8, shape (n_sites, n_panel)
        The panel's alleles at the query sites.
    scale : float32 or ndarray (n_sites,)
        Per-site scale of the vectors (square root of the site weights).
    rank : ndarray, int, shape (n_panel,)
        Tie-breaking place of each haplotype.
    queries : ndarray, float32, shape (n_queries, n_sites)
        Scaled query vectors.
    exclude : ndarray, int, shape (n_queries, m), optional
        Panel columns each query must not get back.
    """
    packed = np.ascontiguousarray(np.packbits(cols, axis=0).T)  # (n_panel, bytes): one key per haplotype
    return _grouped_search(packed, lambda first: cols[:, first].T, scale, rank, queries, k, exclude)


def _grouped_search(packed: np.ndarray, alleles_of, scale, rank: np.ndarray, queries: np.ndarray, k: int,
                    exclude: np.ndarray | None) -> np.ndarray | None:
    """:func:`grouped_search` from each haplotype's alleles at the query sites packed into a byte key
    (``packed``, (n_panel, bytes), C order) and ``alleles_of(columns)``, their alleles ((len, n_sites) 0/1)."""
    n_panel = packed.shape[0]
    keys = packed.view(np.dtype((np.void, packed.shape[1]))).ravel()
    _, first, group = np.unique(keys, return_index=True, return_inverse=True)
    n_u = len(first)
    if n_u > GROUPED_MAX_FRACTION * n_panel:
        return None
    group = group.ravel()
    members = np.lexsort((rank, group)).astype(np.int64)  # haplotypes by group, then rank
    offsets = np.searchsorted(group[members], np.arange(n_u + 1)).astype(np.int64)
    index = faiss.IndexFlatL2(queries.shape[1])
    index.add(np.ascontiguousarray(alleles_of(first) * scale, dtype=np.float32))
    ex = np.full((len(queries), 0), -1, dtype=np.int64) if exclude is None else np.asarray(exclude, dtype=np.int64)
    _check_k(k, n_panel, ex.shape[1])
    rank = np.asarray(rank, dtype=np.int64)
    out = np.full((len(queries), k), -1, dtype=np.int64)
    rows = np.arange(len(queries))
    width = min(n_u, k + ex.shape[1])
    while len(rows):
        dist, ids = index.search(queries[rows], width)
        sub = np.full((len(rows), k), -1, dtype=np.int64)
        again = _expand_groups(dist, ids, offsets, members, rank, ex[rows], k, sub, n_u)
        out[rows] = sub
        rows = rows[again]
        width = min(n_u, 2 * width)
    if (out < 0).any():
        raise RuntimeError("grouped search returned fewer neighbours than requested")
    return out


@numba.njit(cache=True, nogil=True)
def _expand_groups(dist, ids, offsets, members, rank, exclude, k, out, n_groups):
    """Fill ``out`` (queries, k) with the haplotypes of the groups ``ids`` (nearest first), a run of groups at one
    distance ordered by ``rank``; True for the queries whose boundary run may continue past the groups given."""
    nq, width = ids.shape
    again = np.zeros(nq, dtype=np.bool_)
    buf = np.empty(members.shape[0], dtype=np.int64)
    for q in range(nq):
        filled = 0
        g = 0
        while filled < k and g < width:
            g2 = g + 1
            while g2 < width and dist[q, g2] == dist[q, g]:
                g2 += 1
            if g2 == width and width < n_groups:  # the run may go on past the groups returned
                again[q] = True
                break
            nb = 0
            for j in range(g, g2):
                u = ids[q, j]
                for t in range(offsets[u], offsets[u + 1]):
                    h = members[t]
                    keep = True
                    for e in range(exclude.shape[1]):
                        if exclude[q, e] == h:
                            keep = False
                            break
                    if keep:
                        buf[nb] = h
                        nb += 1
            if g2 - g > 1 and nb > 1:  # several groups: their haplotypes by rank (each group's already are)
                keys = np.empty(nb, dtype=np.int64)
                for i in range(nb):
                    keys[i] = rank[buf[i]]
                order = np.argsort(keys, kind="mergesort")
                for i in range(min(nb, k - filled)):
                    out[q, filled + i] = buf[order[i]]
            else:
                for i in range(min(nb, k - filled)):
                    out[q, filled + i] = buf[i]
            filled += min(nb, k - filled)
            g = g2
        if filled < k and not again[q] and width < n_groups:
            again[q] = True
    return again
