"""Stacked method: a non-negative linear blend of other methods, its weights fitted on out-of-sample predictions.

Stacked generalisation (Wolpert 1992; Breiman 1996 with non-negative weights): the blend
``intercept + sum_i w_i * prediction_i`` (``w_i >= 0``) is fitted by least squares on the
``oof`` column of the members' ``predictions.tsv`` — predictions of guides that the model
making them never trained on (cross-validation members: every train+dev guide; otherwise the
dev rows). Only rows where every member has one are used. Test rows never enter the fit.
"""

from __future__ import annotations

import json
import logging
import os
import time

import numpy as np
import pandas as pd
from scipy.optimize import nnls

from omicslm.crispr.kept import save_kept_stack
from omicslm.crispr.train import EFF_MAX, EFF_MIN, write_predictions
from omicslm.errors import InputError
from omicslm.io.runtime import write_runtime

log = logging.getLogger(__name__)

MIN_FIT_ROWS = 10


def fit_blend(oof: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """Least-squares ``intercept`` and non-negative ``weights`` (m,) of ``y ~ intercept + oof @ weights``.

    ``oof`` float (n, m) member predictions, ``y`` float (n,) measured values.
    """
    p_mean, y_mean = oof.mean(0), y.mean()
    weights, _ = nnls(oof - p_mean, y - y_mean)
    return float(y_mean - p_mean @ weights), weights


def stack_method(member_predictions: list, member_runtimes: list, predictions: str | os.PathLike,
                 runtime: str | os.PathLike, *, method: str, members: list[str],
                 kept_dir: str | os.PathLike | None = None) -> dict:
    """Blend the members' predictions; write ``predictions`` (oof column empty) and ``runtime`` (json).

    With ``kept_dir``, the blend is kept too (:func:`omicslm.crispr.kept.save_kept_stack`), for scoring new guides.

    Raises
    ------
    InputError
        When a member's predictions cover other guides (or another order) than the first's,
        or fewer than 10 guides have an out-of-sample prediction from every member.
    """
    started = time.perf_counter()
    tables = [pd.read_csv(p, sep="\t", dtype={"id": str}) for p in member_predictions]
    first = tables[0]
    for path, t in zip(member_predictions[1:], tables[1:]):
        if not (t.id.equals(first.id) and t.role.equals(first.role)):
            raise InputError(path, f"guides or roles differ from {member_predictions[0]}; members of stack {method} "
                                   "must come from one dataset")
    oof = np.column_stack([t.oof.to_numpy(float) for t in tables])
    fit_rows = ~np.isnan(oof).any(1) & (first.role != "test").to_numpy()
    if fit_rows.sum() < MIN_FIT_ROWS:
        raise InputError(member_predictions[0], f"only {int(fit_rows.sum())} guides have an out-of-sample "
                                                f"prediction from every member of stack {method}; need {MIN_FIT_ROWS}")
    y = first.measured.to_numpy(float)
    intercept, weights = fit_blend(oof[fit_rows], y[fit_rows])
    pred = np.clip(intercept + np.column_stack([t.predicted.to_numpy(float) for t in tables]) @ weights,
                   EFF_MIN, EFF_MAX)
    write_predictions(predictions, first.id, first.role, first.measured, pred, np.full(len(pred), np.nan))
    rts = []
    for path in member_runtimes:
        with open(path) as fh:
            rts.append(json.load(fh))
    blend = " + ".join(f"{w:.3f}*{m}" for m, w in zip(members, weights))
    record = {"method": method, "seconds": round(sum(r["seconds"] for r in rts) + time.perf_counter() - started, 3),
              "threads": 1, "trainable_params": int(sum(r["trainable_params"] for r in rts)) + len(members) + 1,
              "encoder": f"stack: {intercept:.2f} + {blend}",
              "members": members, "weights": [round(float(w), 6) for w in weights],
              "intercept": round(intercept, 6), "fit_rows": int(fit_rows.sum())}
    if kept_dir is not None:
        save_kept_stack(kept_dir, method=method, members=members, weights=weights, intercept=intercept)
    write_runtime(runtime, **record)
    log.info("%s: %s, fitted on %d out-of-sample guides", method, record["encoder"], record["fit_rows"])
    return record
