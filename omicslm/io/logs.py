"""Readable logs for workflow steps."""

from __future__ import annotations

import logging
import sys

FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def setup_logging(level: str | int = "INFO", stream=None) -> None:
    """Send log records (and so a rule's progress and counts) to ``stream`` (stderr).

    Rule adapters first point ``sys.stderr`` at the rule's log file, so this one call
    puts logs, tqdm bars and tracebacks in the same file.
    """
    logging.basicConfig(level=level, format=FORMAT, datefmt="%H:%M:%S", stream=stream or sys.stderr, force=True)
