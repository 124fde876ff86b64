import gzip
import shutil
import subprocess

import numpy as np
import pysam
import pytest

from omicslm.io.bgzf import BLOCK_INPUT, EOF_BLOCK, ParallelBGZFWriter, deflate_block


def _text(n_bytes: int) -> bytes:
    rng = np.random.default_rng(0)
    lines = [f"chr1\t{i}\t.\tA\tG\t" + "\t".join(rng.choice(["0|0", "0|1", "1|1"], 20)) + "\n" for i in range(n_bytes // 60)]
    return "".join(lines).encode()


@pytest.mark.parametrize("threads", [1, 3])
def test_parallel_writer_is_bgzf_that_htslib_reads_back(tmp_path, threads):
    data = _text(3_000_000)
    out = tmp_path / "x.gz"
    with ParallelBGZFWriter(out, threads=threads, batch_blocks=4) as fh:
        for i in range(0, len(data), 70_001):  # writes that do not align with blocks
            fh.write(data[i:i + 70_001])
    raw = out.read_bytes()
    assert raw.endswith(EOF_BLOCK) and gzip.decompress(raw) == data
    with pysam.BGZFile(str(out), "rb") as fh:  # htslib's own reader: every block's BC size must be right
        assert fh.read() == data
    n_blocks = -(-len(data) // BLOCK_INPUT)
    assert raw.count(b"\x1f\x8b\x08\x04") >= n_blocks + 1
    if shutil.which("bgzip"):
        subprocess.run(["bgzip", "-t", str(out)], check=True)


def test_same_bytes_on_one_thread_or_several(tmp_path):
    data = _text(500_000)
    for threads in (1, 2):
        with ParallelBGZFWriter(tmp_path / f"{threads}.gz", threads=threads, batch_blocks=2) as fh:
            fh.write(data)
    assert (tmp_path / "1.gz").read_bytes() == (tmp_path / "2.gz").read_bytes()


def test_empty_input_is_the_eof_block_and_a_block_is_bounded(tmp_path):
    with ParallelBGZFWriter(tmp_path / "e.gz") as fh:
        pass
    assert (tmp_path / "e.gz").read_bytes() == EOF_BLOCK and gzip.decompress(EOF_BLOCK) == b""
    incompressible = np.random.default_rng(1).bytes(BLOCK_INPUT)
    assert len(deflate_block(incompressible)) <= 1 << 16
