"""Gradient-boosted trees on Rule Set 2-style sequence features (Doench 2016): a non-neural baseline.

Features of a 30mer (4 nt + 20-nt spacer + NGG + 3 nt), all from the sequence itself:
position-specific 1-mers (30 x 4) and 2-mers (29 x 16) as 0/1 indicators, position-independent
2-mer counts in the spacer (16), the spacer's GC count, and the binding energy when computed.
Optional groups (a method's ``features:``), also Rule Set 2 / guide-design features:

- ``thermo``: SantaLucia (1998) DNA nearest-neighbour free energy of the whole 30mer and of the three
  segments whose melting temperature Rule Set 2 uses (the 5 nt at the PAM, the 8 nt before them, the 5 nt
  at the spacer's distal end), and the spacer's longest single-base run (TTTT ends Pol III transcription).
- ``fold``: ViennaRNA minimum free energy of the spacer RNA alone and followed by the sgRNA scaffold
  (a method's ``scaffold:``, default the common SpCas9 scaffold), i.e. how much the guide folds on itself.
scikit-learn's ``HistGradientBoostingRegressor`` fits them with early stopping on the member's
own dev rows (``fit(X_val=..., y_val=...)``), so a cross-validation member stops on its fold.
"""

from __future__ import annotations

import itertools
import logging
import re
import time

import numpy as np

from omicslm.crispr.energy import DNA_STACK, have_vienna
from omicslm.crispr.kmers import FLANK5, SPACER
from omicslm.crispr.models import BASES, one_hot

log = logging.getLogger(__name__)

DIMERS = ["".join(p) for p in itertools.product(BASES, repeat=2)]
FEATURE_GROUPS = ("thermo", "fold")
# Rule Set 2's melting-temperature segments of the 30mer as [start, end) (Doench 2016: seq[19:24], seq[11:19],
# seq[3:8]), and the whole 30mer
THERMO_SEGMENTS = {"dG_30mer": (0, 30), "dG_pam_side5": (19, 24), "dG_middle8": (11, 19), "dG_distal5": (3, 8)}
# the common SpCas9 sgRNA scaffold (tracrRNA fusion) after the spacer, DNA letters
SCAFFOLD = "GTTTTAGAGCTAGAAATAGCAAGTTAAAATAAGGCTAGTCCGTTATCAACTTGAAAAAGTGGCACCGAGTCGGTGC"
# HistGradientBoostingRegressor options a method block may set under `gbm:` (defaults below)
DEFAULTS = {"learning_rate": 0.05, "max_iter": 3000, "max_leaf_nodes": 15, "min_samples_leaf": 20,
            "l2_regularization": 1.0, "n_iter_no_change": 100}


def longest_run(seqs) -> np.ndarray:
    """Length of the longest run of one base in each sequence."""
    return np.array([max(len(m.group()) for m in re.finditer(r"(.)\1*", s)) for s in seqs], dtype=np.float32)


def fold_energies(spacers, scaffold: str = SCAFFOLD) -> np.ndarray:
    """(n, 2) ViennaRNA MFE (kcal/mol) of each spacer's RNA alone and followed by ``scaffold``."""
    if not have_vienna():
        raise ImportError("gbm feature group 'fold' needs the ViennaRNA Python bindings: pip install ViennaRNA==2.7.2")
    import RNA

    cache: dict[str, tuple[float, float]] = {}
    scaffold_rna = scaffold.upper().replace("T", "U")
    for s in spacers:
        if s not in cache:
            rna = s.replace("T", "U")
            cache[s] = (RNA.fold(rna)[1], RNA.fold(rna + scaffold_rna)[1])
    return np.array([cache[s] for s in spacers], dtype=np.float32).reshape(len(spacers), 2)


def sequence_features(mer30: np.ndarray, energy: np.ndarray | None = None, groups=(),
                      scaffold: str = SCAFFOLD) -> np.ndarray:
    """Feature matrix float32 (n, F) of n equal-length context sequences (+ one energy column when given).

    ``groups``: optional feature groups of :data:`FEATURE_GROUPS`, appended in that order.
    """
    unknown = sorted(set(groups) - set(FEATURE_GROUPS))
    if unknown:
        raise ValueError(f"unknown gbm feature group(s) {unknown}; known: {list(FEATURE_GROUPS)}")
    oh = one_hot(list(mer30))  # (n, 4, L), the CNN's encoding; a non-ACGT base is all zeros
    n, _, length = oh.shape
    mono = oh.transpose(0, 2, 1)  # (n, L, 4): position-major, bases in ACGT order
    # 2-mer at p = (base at p) x (base at p + 1), index 4 * first + second as in DIMERS
    di = np.einsum("nip,njp->npij", oh[:, :, :-1], oh[:, :, 1:]).reshape(n, length - 1, 16)
    di_counts = di[:, FLANK5:FLANK5 + SPACER - 1].sum(1)
    gc = oh[:, 1:3, FLANK5:FLANK5 + SPACER].sum((1, 2))[:, None]  # C and G channels over the spacer
    cols = [mono.reshape(n, -1), di.reshape(n, -1), di_counts, gc]
    if energy is not None:
        cols.append(np.asarray(energy, dtype=np.float32).reshape(n, 1))
    spacers = [s[FLANK5:FLANK5 + SPACER] for s in mer30]
    if "thermo" in groups:
        stack_dg = di @ np.array([DNA_STACK[d] for d in DIMERS], dtype=np.float32)  # (n, L - 1): stack at p, p + 1
        cols += [stack_dg[:, a:b - 1].sum(1, keepdims=True) for a, b in THERMO_SEGMENTS.values()]
        cols.append(longest_run(spacers)[:, None])
    if "fold" in groups:
        started = time.perf_counter()
        cols.append(fold_energies(spacers, scaffold))
        log.info("gbm fold features: %d spacers folded in %.1f s", len(set(spacers)), time.perf_counter() - started)
    return np.concatenate(cols, axis=1).astype(np.float32)


def feature_names(length: int = 30, energy: bool = False, groups=()) -> list[str]:
    """Names of :func:`sequence_features` columns, in order (for logs and feature importances)."""
    names = [f"{b}@{p + 1}" for p in range(length) for b in BASES]
    names += [f"{d}@{p + 1}" for p in range(length - 1) for d in DIMERS]
    names += [f"n_{d}" for d in DIMERS] + ["gc_count"] + (["binding_energy"] if energy else [])
    if "thermo" in groups:
        names += list(THERMO_SEGMENTS) + ["longest_run"]
    if "fold" in groups:
        names += ["mfe_spacer", "mfe_spacer_scaffold"]
    return names


def gbm_inputs(data: dict, spec: dict) -> tuple[np.ndarray, bool]:
    """The feature matrix of every guide (:func:`sequence_features`) and whether it holds the binding energy."""
    use_energy = bool(not np.isnan(data["energy"]).all() and spec.get("use_energy", True))
    x = sequence_features(data["mer30"], data["energy"] if use_energy else None, spec.get("features", ()),
                          spec.get("scaffold", SCAFFOLD))
    return x, use_energy


def train_gbm_member(data: dict, features: tuple[np.ndarray, bool], role: np.ndarray, spec: dict, *, seed: int,
                     threads: int = 1) -> dict:
    """Fit one boosted-tree model on ``role == "train"`` rows, early-stopping on ``role == "dev"`` rows.

    ``features``: :func:`gbm_inputs` of ``data`` (computed once for all members of an ensemble).
    Returns the same record as a neural member: predictions for every guide (0–100), seconds,
    ``trainable`` (number of leaf values over all trees), ``best_epoch`` (boosting iterations kept).
    """
    from sklearn.ensemble import HistGradientBoostingRegressor
    from threadpoolctl import threadpool_limits

    x, use_energy = features
    y = data["efficiency"].astype(np.float64)
    tr, dv = role == "train", role == "dev"
    opts = {**DEFAULTS, **(spec.get("gbm") or {})}
    model = HistGradientBoostingRegressor(early_stopping=True, random_state=seed, **opts)
    started = time.perf_counter()
    with threadpool_limits(max(1, threads)):
        model.fit(x[tr], y[tr], X_val=x[dv], y_val=y[dv])
        pred = np.clip(model.predict(x), 0.0, 100.0)
    seconds = time.perf_counter() - started
    # leaf values are what boosting fits; sklearn keeps the trees in the (private) _predictors list
    leaves = sum(int(t.nodes["is_leaf"].sum()) for stage in model._predictors for t in stage)
    log.info("gbm (seed %d): %d iterations, %d leaves, %d features, %.1f s", seed, model.n_iter_, leaves, x.shape[1],
             seconds)
    encoder = "none (sequence features" + "".join(f" + {g}" for g in spec.get("features", ())) + (
        " + binding energy)" if use_energy else ")")
    return {"pred": pred, "ids": data["id"], "roles": data["role"], "measured": y.astype(np.float32),
            "seconds": seconds, "dev": dv, "trainable": leaves, "encoder": encoder, "best_epoch": int(model.n_iter_),
            "model": model, "use_energy": use_energy}
