"""Publish a finished training run: from the loop's work directory into the rule's declared outputs.

:func:`omicslm.train.fit` trains in a work directory that is kept outside the workflow's
declared outputs (a failed job must not delete its resumable ``last/``). Once it has
finished, :func:`publish_run` copies what the later steps read into the output directory::

    best/          the best epoch's checkpoint (weights, config.json, trainer_state.json, ...)
    history.tsv    one row per epoch
    <summary>      a JSON record of the run (e.g. ``train_summary.json``)

Each is replaced atomically, so an interrupted publish leaves the previous file or none.
:func:`replacing_dir` does the same for a directory a branch writes itself (a Hugging Face
model directory, say).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from omicslm.io.atomic import atomic_dir, atomic_path
from omicslm.io.runtime import write_json


def publish_run(work_dir: str | os.PathLike, out_dir: str | os.PathLike, *, summary_name: str,
                summary: dict) -> Path:
    """Copy ``work_dir/best`` and ``work_dir/history.tsv`` into ``out_dir``; write ``summary`` there as JSON.

    Parameters
    ----------
    work_dir : path
        The ``out_dir`` that :func:`omicslm.train.fit` trained in.
    out_dir : path
        Receives ``best/``, ``history.tsv`` and ``summary_name`` (each replaced if present).
    summary_name : str
        File name of the summary, e.g. ``train_summary.json``.
    summary : dict
        JSON-serialisable record of the run.

    Returns
    -------
    Path
        ``out_dir``.

    Raises
    ------
    RuntimeError
        When ``work_dir`` holds no ``best/`` checkpoint (training never finished an epoch).
    """
    work_dir, out_dir = Path(work_dir), Path(out_dir)
    if not (work_dir / "best").is_dir():
        raise RuntimeError(f"training finished without a best checkpoint in {work_dir}")
    copy_dir_atomic(work_dir / "best", out_dir / "best")
    with atomic_path(out_dir / "history.tsv") as tmp:
        shutil.copyfile(work_dir / "history.tsv", tmp)
    write_json(out_dir / summary_name, summary)
    return out_dir


def copy_dir_atomic(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """Replace the directory ``dst`` with a copy of ``src`` (see :func:`replacing_dir`)."""
    with replacing_dir(dst) as tmp:
        shutil.copytree(src, tmp, dirs_exist_ok=True)
    return Path(dst)


def replacing_dir(dst: str | os.PathLike):
    """An empty directory beside ``dst`` to fill; renamed onto ``dst`` (replacing it) when the block succeeds
    (:func:`omicslm.io.atomic.atomic_dir`)."""
    return atomic_dir(dst)
    shutil.rmtree(old, ignore_errors=True)


def train_seconds(history: list[dict]) -> float:
    """Training time over all (possibly resumed) runs: the sum of the loop's per-epoch wall times."""
    return float(sum(float(row.get("seconds", 0.0)) for row in history))
