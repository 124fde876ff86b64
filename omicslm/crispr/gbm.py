"""Gradient-boosted trees on Rule Set 2-style sequence features (Doench 2016): a non-neural baseline.

Features of a 30mer (4 nt + 20-nt spacer + NGG + 3 nt), all from the sequence itself:
position-specific 1-mers (30 x 4) and 2-mers (29 x 16) as 0/1 indicators, position-independent
2-mer counts in the spacer (16), the spacer's GC count, and the binding energy when computed.
scikit-learn's ``HistGradientBoostingRegressor`` fits them with early stopping on the member's
own dev rows (``fit(X_val=..., y_val=...)``), so a cross-validation member stops on its fold.
"""

from __future__ import annotations

import itertools
import logging
import time

import numpy as np

from omicslm.crispr.kmers import FLANK5, SPACER
from omicslm.crispr.models import BASES, one_hot

log = logging.getLogger(__name__)

DIMERS = ["".join(p) for p in itertools.product(BASES, repeat=2)]
# HistGradientBoostingRegressor options a method block may set under `gbm:` (defaults below)
DEFAULTS = {"learning_rate": 0.05, "max_iter": 3000, "max_leaf_nodes": 15, "min_samples_leaf": 20,
            "l2_regularization": 1.0, "n_iter_no_change": 100}


def sequence_features(mer30: np.ndarray, energy: np.ndarray | None = None) -> np.ndarray:
    """Feature matrix float32 (n, F) of n equal-length context sequences (+ one energy column when given)."""
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
    return np.concatenate(cols, axis=1).astype(np.float32)


def feature_names(length: int = 30, energy: bool = False) -> list[str]:
    """Names of :func:`sequence_features` columns, in order (for logs and feature importances)."""
    names = [f"{b}@{p + 1}" for p in range(length) for b in BASES]
    names += [f"{d}@{p + 1}" for p in range(length - 1) for d in DIMERS]
    names += [f"n_{d}" for d in DIMERS] + ["gc_count"]
    return names + (["binding_energy"] if energy else [])


def gbm_inputs(data: dict, spec: dict) -> tuple[np.ndarray, bool]:
    """The feature matrix of every guide (:func:`sequence_features`) and whether it holds the binding energy."""
    use_energy = bool(not np.isnan(data["energy"]).all() and spec.get("use_energy", True))
    return sequence_features(data["mer30"], data["energy"] if use_energy else None), use_energy


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
    encoder = "none (sequence features" + (" + binding energy)" if use_energy else ")")
    return {"pred": pred, "ids": data["id"], "roles": data["role"], "measured": y.astype(np.float32),
            "seconds": seconds, "dev": dv, "trainable": leaves, "encoder": encoder, "best_epoch": int(model.n_iter_)}
