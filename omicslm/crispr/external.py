"""External tests: every trained method scores the guides of a screen it never trained on.

``crispr.external_tests`` maps a name to a table laid out as ``crispr.data.table`` (path, sheet, a 30mer column or
spacer + surrounding sequence, label column and scale, optional id). :func:`external_guides` turns it into a
``guides.tsv`` through the steps the training data went through (:func:`omicslm.crispr.io.table_to_inputs`, the
CRISPRon-compatible site extractor and the join); :func:`score_external` marks the guides whose spacer is also a
training guide's (any role: such a guide is not external; counted and left out of the scores) and adds each kept
method's prediction as a column. ``results/crispr_eval.tsv`` then has one row per method and data set.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd

from omicslm.crispr.join import read_guides
from omicslm.crispr.kept import load_kept
from omicslm.crispr.kmers import FLANK5, SPACER
from omicslm.io.atomic import atomic_open, scratch_dir

log = logging.getLogger(__name__)

#: the defaults of a table's keys (as crispr.data.table's in the config schema)
TABLE_DEFAULTS = {"sheet": None, "context_column": None, "spacer_column": None, "sequence_column": None,
                  "label_scale": 1.0, "id_column": None}


def external_guides(spec: dict, out_guides: str | os.PathLike, *, label_range, on_bad_record: str,
                    join: dict) -> int:
    """Write the ``guides.tsv`` (``id grna site mer30 efficiency``) of one external table ``spec``; return its size."""
    from omicslm.crispr.io import table_to_inputs
    from omicslm.crispr.join import join_guides
    from omicslm.crispr.kmers import extract_mers

    path = spec["path"]
    columns = {**TABLE_DEFAULTS, **{k: v for k, v in spec.items() if k != "path"}}
    with scratch_dir(out_guides) as tmp:
        t = Path(tmp)
        table_to_inputs(path, t / "oligos.fa", t / "labels.tsv", label_range=tuple(label_range),
                        on_bad_record=on_bad_record, id_prefix="row", row_base=2, **columns)
        extract_mers(t / "oligos.fa", t / "23mers.fa", t / "30mers.fa", on_bad_record=on_bad_record)
        counts = join_guides(t / "labels.tsv", t / "30mers.fa", out_guides, on_missing=join["on_missing"],
                             on_multiple=join["on_multiple"])
    log.info("%s: %d external guides", path, counts["joined"])
    return counts["joined"]


def score_external(guides: str | os.PathLike, training_guides: str | os.PathLike, kept: dict[str, str | os.PathLike],
                   out: str | os.PathLike) -> pd.DataFrame:
    """Predict every external guide with each kept method (``name -> kept dir``); write ``out``.

    Columns: ``id mer30 measured in_training`` then one column per method (0-100). ``in_training``: the guide's
    20-nt spacer is one of the training table's (train, dev or test), so it is not external.
    """
    ext = read_guides(guides)
    seen = set(read_guides(training_guides).mer30.str[FLANK5:FLANK5 + SPACER])
    table = pd.DataFrame({"id": ext.id, "mer30": ext.mer30, "measured": ext.efficiency,
                          "in_training": ext.mer30.str[FLANK5:FLANK5 + SPACER].isin(seen)})
    methods = {name: load_kept(d) for name, d in kept.items()}
    energy = None
    if any(m.uses_energy for m in methods.values()):
        from omicslm.crispr.predict import _energies

        energy = _energies(table.mer30.str[FLANK5:FLANK5 + SPACER])
    for name, m in methods.items():
        table[name] = m.predict(table.mer30.to_numpy(), energy)
    with atomic_open(out) as fh:
        table.to_csv(fh, sep="\t", index=False, float_format="%.4f")
    log.info("%s: %d guides, %d also in the training table (left out of the scores), scored by %d methods", guides,
             len(table), int(table.in_training.sum()), len(methods))
    return table


def external_rows(name: str, predictions: str | os.PathLike, methods: list[str]) -> list[dict]:
    """The eval-table rows of one external set: per method its metrics over the guides not in training."""
    from omicslm.crispr.evaluate import regression_metrics

    t = pd.read_csv(predictions, sep="\t", dtype={"id": str})
    used = t[~t.in_training.astype(bool)]
    rows = []
    for m in methods:
        metrics = (regression_metrics(used.measured, used[m]) if len(used) >= 3
                   else dict.fromkeys(("rmse", "mse", "mae", "spearman", "pearson"), np.nan))
        rows.append({"method": m, "dataset": name, "n_test": len(used), "n_overlap_removed": int(t.in_training.sum()),
                     **metrics})
    return rows
