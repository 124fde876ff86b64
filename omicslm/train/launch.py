"""Run a training function in this process, or in one ``torchrun`` process per GPU.

A training rule's adapter passes its ``resources.gpu`` to :func:`call`. With 0 or 1 GPU the
function runs here, as a plain Python call. With more,
``python -m torch.distributed.run --standalone --nproc-per-node N`` (the ``torchrun``
command, run by this interpreter so a conda environment's torch is the one used) starts
N processes on this node; each runs :func:`main`, which calls the same function with the
same arguments, and the shared loop (:func:`omicslm.train.fit`) or Hugging Face ``Trainer``
sees the torchrun environment and trains data-parallel, rank 0 writing the outputs.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from omicslm.train.distributed import is_main_process

log = logging.getLogger(__name__)


def resolve(target: str):
    """The function named ``"package.module:function"``."""
    module, sep, name = target.partition(":")
    if not sep or not name:
        raise ValueError(f"target {target!r} is not 'package.module:function'")
    return getattr(importlib.import_module(module), name)


def torchrun_command(nproc: int, spec: str | os.PathLike) -> list[str]:
    """The torchrun command line that runs the call described by the JSON file ``spec``."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(int(nproc)),
            "-m", "omicslm.train.launch", str(spec)]


def _json_default(obj: Any) -> Any:
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    raise TypeError(f"cannot pass {type(obj).__name__} {obj!r} to the torchrun processes (JSON only)")


def _log_fd() -> int | None:
    """File descriptor of ``sys.stderr`` (the rule's log once the adapter redirected it), if it has one."""
    try:
        sys.stderr.flush()
        return sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        return None


def call(target: str, *args: Any, nproc: int | str | None = 1, **kwargs: Any) -> Any:
    """Call ``target(*args, **kwargs)``, here (``nproc`` <= 1) or in ``nproc`` torchrun processes.

    Parameters
    ----------
    target : str
        ``"package.module:function"``, e.g. ``"omicslm.crispr.train:train_method"``.
    *args, **kwargs
        JSON-serialisable arguments (paths, numbers, lists, config dicts). A ``threads``
        keyword is divided among the processes, so the job keeps to the cores it was given.
    nproc : int
        Processes (GPUs) on this node, the rule's ``resources.gpu``.

    Returns
    -------
    The function's result when it ran here; None after torchrun (each process wrote its
    outputs itself).

    Raises
    ------
    RuntimeError
        When torchrun exits non-zero (the ranks' tracebacks are in the log above).
    """
    nproc = int(nproc or 1)
    if nproc <= 1:
        return resolve(target)(*args, **kwargs)
    if "threads" in kwargs:
        kwargs["threads"] = max(1, int(kwargs["threads"]) // nproc)
    text = json.dumps({"target": target, "args": list(args), "kwargs": kwargs}, default=_json_default)
    with tempfile.TemporaryDirectory(prefix="omicslm-torchrun-") as tmp:
        spec = Path(tmp) / "call.json"
        spec.write_text(text)
        cmd = torchrun_command(nproc, spec)
        log.info("%s on %d processes: %s", target, nproc, " ".join(cmd))
        fd = _log_fd()
        returncode = subprocess.run(cmd, stdout=fd, stderr=fd).returncode
    if returncode != 0:
        raise RuntimeError(f"torchrun of {target} on {nproc} processes exited with status {returncode}; "
                           f"the processes' tracebacks are above in this log")
    return None


def main(argv: list[str] | None = None) -> None:
    """One torchrun process: ``python -m omicslm.train.launch call.json``."""
    from omicslm.io.logs import setup_logging

    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        raise SystemExit("usage: python -m omicslm.train.launch CALL.json (written by omicslm.train.launch.call)")
    spec = json.loads(Path(argv[0]).read_text())
    # every rank logs into the same file: progress lines from rank 0, warnings and errors from all
    setup_logging("INFO" if is_main_process() else "WARNING")
    resolve(spec["target"])(*spec["args"], **spec["kwargs"])


if __name__ == "__main__":
    main()
