"""CPU threads of the compiled (numba) loops: every compiled step runs on the rule's threads, capped at numba's pool."""

from __future__ import annotations

import numba


def set_numba_threads(threads: int) -> None:
    """Run the following parallel numba loops of this thread on ``threads`` threads (at least 1, at most the pool's
    ``NUMBA_NUM_THREADS``)."""
    numba.set_num_threads(max(1, min(int(threads), numba.config.NUMBA_NUM_THREADS)))
