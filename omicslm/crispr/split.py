"""Deterministic train/dev/test split of guides, grouped by spacer so no gRNA lands in two splits."""

from __future__ import annotations

import logging
import os

import numpy as np
import pandas as pd

from omicslm.crispr.join import read_guides
from omicslm.io.atomic import atomic_open

log = logging.getLogger(__name__)

ROLES = ("train", "dev", "test")


def split_guides(guides: str | os.PathLike, out: str | os.PathLike, *, dev_fraction: float, test_fraction: float,
                 seed: int) -> dict[str, int]:
    """Write ``split.tsv`` (``id\trole``, role in train/dev/test).

    Distinct spacers are shuffled with ``numpy.random.default_rng(seed)`` and cut into
    test / dev / train by the fractions; every guide follows its spacer, so a spacer
    seen in training never appears in dev or test.

    Returns
    -------
    dict
        Guides per role.
    """
    if not (0 < dev_fraction < 1 and 0 < test_fraction < 1 and dev_fraction + test_fraction < 1):
        raise ValueError(f"dev_fraction {dev_fraction} and test_fraction {test_fraction} must be in (0, 1) "
                         f"and sum below 1")
    df = read_guides(guides)
    spacers = np.array(sorted(df.grna.unique()))
    order = np.random.default_rng(seed).permutation(len(spacers))
    n_test = max(1, round(test_fraction * len(spacers)))
    n_dev = max(1, round(dev_fraction * len(spacers)))
    if n_test + n_dev >= len(spacers):
        raise ValueError(f"{len(spacers)} distinct gRNAs are too few for a train/dev/test split")
    role_of = {}
    for rank, k in enumerate(order):
        role_of[spacers[k]] = "test" if rank < n_test else "dev" if rank < n_test + n_dev else "train"
    table = pd.DataFrame({"id": df.id, "role": df.grna.map(role_of)})
    with atomic_open(out) as fh:
        table.to_csv(fh, sep="\t", index=False)
    counts = {r: int((table.role == r).sum()) for r in ROLES}
    log.info("split %d guides (%d distinct gRNAs): %s", len(table), len(spacers), counts)
    return counts
