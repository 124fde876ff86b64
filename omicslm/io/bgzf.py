"""A BGZF writer that deflates its blocks on several threads.

BGZF (the SAM/BAM specification, section 4.1) is a series of gzip members of at most 64 KiB,
each carrying its own compressed size in a ``BC`` extra field, ended by an empty member. Its
blocks are independent, so they can be deflated in parallel: zlib releases the GIL while it
compresses. htslib's tools (``bgzip -@``) and Beagle do the same; pysam's ``BGZFile`` deflates
on one thread, which is most of the time of writing an imputed VCF. What this writes is read by
htslib (tabix, bcftools, cyvcf2) as any BGZF file.
"""

from __future__ import annotations

import struct
import zlib
from collections import deque
from concurrent.futures import ThreadPoolExecutor

BLOCK_INPUT = 0xFF00   # uncompressed bytes per block (htslib's): its deflated form always fits in 64 KiB
LEVEL = 6              # zlib's default level, as bgzip and pysam use
# the empty block that ends every BGZF file (SAM/BAM specification, section 4.1.2)
EOF_BLOCK = bytes.fromhex("1f8b08040000000000ff0600424302001b0003000000000000000000")


def deflate_block(data: bytes, level: int = LEVEL) -> bytes:
    """One BGZF block (a gzip member with the ``BC`` extra field) holding ``data`` (at most :data:`BLOCK_INPUT` bytes)."""
    comp = zlib.compressobj(level, zlib.DEFLATED, -15)
    payload = comp.compress(data) + comp.flush()
    size = len(payload) + 26  # header 18 + payload + CRC32 4 + ISIZE 4
    if size > 1 << 16:
        raise ValueError(f"a BGZF block of {len(data)} bytes deflates to {size} bytes, beyond 64 KiB")
    header = struct.pack("<BBBBIBBHBBHH", 31, 139, 8, 4, 0, 0, 255, 6, 66, 67, 2, size - 1)
    return header + payload + struct.pack("<II", zlib.crc32(data) & 0xFFFFFFFF, len(data) & 0xFFFFFFFF)


class ParallelBGZFWriter:
    """File-like BGZF writer: ``write`` bytes, ``close`` (or leave the ``with`` block) to finish with the EOF block.

    Bytes are gathered until ``batch_blocks`` blocks' worth, which are then deflated on ``threads`` threads and
    written in order. The caller goes on while they deflate: up to two batches are in flight, so laying out the
    next records overlaps the deflating of the last ones. ``threads=1`` deflates in the calling thread.
    """

    def __init__(self, path, *, threads: int = 1, level: int = LEVEL, batch_blocks: int = 64):
        self._fh = open(path, "wb")
        self._level = level
        self._threads = max(1, int(threads))
        self._pool = ThreadPoolExecutor(self._threads) if self._threads > 1 else None
        self._pending: list[bytes] = []
        self._pending_len = 0
        self._batch = batch_blocks * BLOCK_INPUT
        self._in_flight: deque = deque()  # futures of deflated blocks, in file order
        self._max_in_flight = 2 * max(1, batch_blocks)

    def write(self, data: bytes) -> int:
        self._pending.append(bytes(data))
        self._pending_len += len(data)
        if self._pending_len >= self._batch:
            self._flush(final=False)
        return len(data)

    def _flush(self, *, final: bool) -> None:
        buf = b"".join(self._pending)
        n_full = len(buf) // BLOCK_INPUT if not final else -(-len(buf) // BLOCK_INPUT)
        chunks = [buf[i * BLOCK_INPUT:(i + 1) * BLOCK_INPUT] for i in range(n_full)]
        rest = buf[n_full * BLOCK_INPUT:]
        self._pending, self._pending_len = ([rest], len(rest)) if rest else ([], 0)
        if self._pool is None:
            for c in chunks:
                self._fh.write(deflate_block(c, self._level))
            return
        for c in chunks:
            self._in_flight.append(self._pool.submit(deflate_block, c, self._level))
        # write what is done, in order; wait only while more than two batches are in flight (or at the end)
        while self._in_flight and (final or len(self._in_flight) > self._max_in_flight or self._in_flight[0].done()):
            self._fh.write(self._in_flight.popleft().result())

    def close(self) -> None:
        if self._fh.closed:
            return
        try:
            self._flush(final=True)
            self._fh.write(EOF_BLOCK)
        finally:
            self._fh.close()
            if self._pool is not None:
                self._pool.shutdown()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if exc[0] is not None:  # an error while writing: close the file without pretending it is complete
            self._fh.close()
            if self._pool is not None:
                self._pool.shutdown(cancel_futures=True)
            return False
        self.close()
        return False
