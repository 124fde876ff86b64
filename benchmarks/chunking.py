"""Tokenize -> concatenate -> chunk: omicslm's streaming chunker vs the user's million-row ``map`` concat.

Both methods tokenize the same paragraph corpus with the same ``Dataset.map`` call (the same Rust
BPE, so the same ids; the user's recipe would also store an attention mask, left out here), then

* ours: the tokenizer loaded as the workflow's rule loads it (:func:`omicslm.textlm.chunking.load_backend`,
  the Rust ``tokenizers`` object from ``tokenizer.json``), then
  :func:`omicslm.textlm.chunking.chunk_dataset` (Arrow record batches, carry < block_size);
* user: the tokenizer loaded as ``GPT2TokenizerFast.from_pretrained`` (``transformers``), then
  ``map(group_texts, batched=True, batch_size=1_000_000)`` (run_clm.py's concatenation in
  Python lists; one batch holds the whole corpus while it has fewer than a million rows).

Each method runs in a fresh subprocess, so the peaks do not mix, and reports two peaks:

* peak RSS (``ru_maxrss``, itself or its largest map worker): everything resident, including the
  pages of the memory-mapped Arrow files ``datasets`` reads (clean page cache the kernel can drop;
  it grows with the files read, for both methods);
* peak anonymous RSS (``RssAnon`` of the process and its children, sampled every 10 ms): the
  memory the method itself allocates, which is what must stay flat as the corpus grows.

Prints the identical-chunks check, time ratios and both peak-memory ratios at the default
corpus (Shakespeare, ~1.5M GPT-2 tokens) and with it repeated 10x.

Usage: python benchmarks/chunking.py [--repeats 1 10] [--block-size 1024] [--num-proc 1]
(uses resources/textlm/{shakespeare,tokenizer/clm or gpt2_bpe} of a workflow run, else fetches them).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from itertools import chain
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
USER_BATCH = 1_000_000


def group_texts(examples, block_size):
    """The user's concatenation (run_clm.py): whole map batch -> blocks, remainder dropped."""
    concatenated = list(chain(*examples["input_ids"]))
    total = len(concatenated) // block_size * block_size
    return {"input_ids": [concatenated[i:i + block_size] for i in range(0, total, block_size)]}


def _rows(files, repeats):
    from omicslm.textlm.corpus import paragraphs, read_text

    for _ in range(repeats):
        for f in files:
            for par in paragraphs(read_text(f)):
                yield {"text": par}


def make_corpus(texts: Path, repeats: int, out: Path):
    import datasets

    files = sorted(texts.glob("*.txt"))
    ds = datasets.Dataset.from_generator(_rows, gen_kwargs={"files": files, "repeats": repeats},
                                         cache_dir=str(out.parent / f"cache{repeats}"))
    ds.save_to_disk(str(out))
    return len(ds)


def _anon_kb(pid: int) -> int:
    """RssAnon of ``pid`` plus its descendants, in kB (Linux /proc)."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/status") as fh:
                total += next(int(line.split()[1]) for line in fh if line.startswith("RssAnon:"))
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as fh:
                    todo.extend(int(c) for c in fh.read().split())
        except (OSError, StopIteration):
            continue  # the process ended between listing and reading
    return total


class AnonPeak:
    """Sample the anonymous RSS of this process tree every ``interval`` s in a thread; ``.peak_kb``."""

    def __init__(self, interval: float = 0.01):
        import threading

        self.peak_kb, self._stop = 0, threading.Event()
        self._thread = threading.Thread(target=self._run, args=(interval,), daemon=True)

    def _run(self, interval):
        while not self._stop.is_set():
            self.peak_kb = max(self.peak_kb, _anon_kb(os.getpid()))
            self._stop.wait(interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak_kb = max(self.peak_kb, _anon_kb(os.getpid()))


def worker(method: str, corpus: str, tok_dir: str, out: str, block_size: int, num_proc: int) -> None:
    """Tokenize + chunk with one method, save the blocks, print {seconds, chunk_seconds, peak_mb}."""
    import datasets

    from omicslm.textlm.chunking import chunk_dataset, load_backend, tokenize_dataset
    from omicslm.textlm.tokenizer import load_tokenizer

    datasets.disable_progress_bars()
    with AnonPeak() as anon, tempfile.TemporaryDirectory(dir=Path(out).parent) as tmp:
        ds = datasets.load_from_disk(corpus)
        start = time.perf_counter()
        tok = load_backend(tok_dir) if method == "ours" else load_tokenizer(tok_dir)
        tokenized = tokenize_dataset(ds, tok, num_proc=num_proc, cache_file=f"{tmp}/tok.arrow")
        mid = time.perf_counter()
        if method == "ours":
            blocks = chunk_dataset(tokenized, f"{tmp}/blocks.arrow", block_size=block_size)
        else:
            blocks = tokenized.map(group_texts, fn_kwargs={"block_size": block_size}, batched=True,
                                   batch_size=USER_BATCH, cache_file_name=f"{tmp}/blocks.arrow")
        end = time.perf_counter()
        blocks.save_to_disk(out)
    peak_kb = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    print(json.dumps({"seconds": end - start, "chunk_seconds": end - mid, "peak_mb": peak_kb / 1024,
                      "anon_mb": anon.peak_kb / 1024, "blocks": len(blocks)}))


def run_method(method, corpus, tok_dir, out, block_size, num_proc) -> dict:
    cmd = [sys.executable, __file__, "--worker", method, "--corpus", str(corpus), "--tokenizer", str(tok_dir),
           "--out", str(out), "--block-size", str(block_size), "--num-proc", str(num_proc)]
    res = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def same_blocks(a: Path, b: Path) -> bool:
    """Compare two saved block datasets batch by batch (bounded memory)."""
    import datasets
    import numpy as np

    da, db = datasets.load_from_disk(str(a)), datasets.load_from_disk(str(b))
    if len(da) != len(db):
        return False
    step = 1000
    for i in range(0, len(da), step):
        xa = np.asarray(da.with_format("numpy")[i:i + step]["input_ids"], dtype=np.int64)
        xb = np.asarray(db.with_format("numpy")[i:i + step]["input_ids"], dtype=np.int64)
        if not np.array_equal(xa, xb):
            return False
    return True


def inputs(work: Path) -> tuple[Path, Path]:
    """Shakespeare texts and the GPT-2 tokenizer: from a workflow run's resources/ or fetched."""
    texts = ROOT / "resources/textlm/shakespeare"
    if not texts.is_dir():
        from omicslm.textlm.corpus import fetch_shakespeare

        texts = work / "shakespeare"
        fetch_shakespeare(texts)
    tok = ROOT / "results/textlm/tokenizer/clm"
    if not tok.is_dir():
        from omicslm.textlm.tokenizer import fetch_gpt2_bpe, load_bpe

        bpe = ROOT / "resources/textlm/gpt2_bpe"
        if not bpe.is_dir():
            bpe = fetch_gpt2_bpe(work / "gpt2_bpe")
        tok = work / "clm"  # the layout the workflow's tokenizer rule writes (save_pretrained: tokenizer.json)
        load_bpe(bpe).save_pretrained(str(tok))
    return texts, tok


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, nargs="+", default=[1, 10])
    ap.add_argument("--block-size", type=int, default=1024)
    ap.add_argument("--num-proc", type=int, default=1)
    ap.add_argument("--worker", choices=["ours", "user"])
    ap.add_argument("--corpus")
    ap.add_argument("--tokenizer")
    ap.add_argument("--out")
    a = ap.parse_args()
    if a.worker:
        return worker(a.worker, a.corpus, a.tokenizer, a.out, a.block_size, a.num_proc)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        texts, tok = inputs(work)
        print(f"block_size {a.block_size}, num_proc {a.num_proc}, tokenizer {tok}")
        print(f"{'corpus':>8} {'rows':>9} {'blocks':>8} {'same':>5} {'ours s':>7} {'user s':>7} {'time user/ours':>15} "
              f"{'chunk-only user/ours':>21} {'RSS MB ours':>11} {'user':>6} {'ours/user':>9} "
              f"{'anon MB ours':>12} {'user':>6} {'ours/user':>9}")
        for r in a.repeats:
            corpus = work / f"corpus{r}"
            rows = make_corpus(texts, r, corpus)
            res = {m: run_method(m, corpus, tok, work / f"{m}{r}", a.block_size, a.num_proc) for m in ("ours", "user")}
            same = same_blocks(work / f"ours{r}", work / f"user{r}")
            o, u = res["ours"], res["user"]
            print(f"{str(r) + 'x':>8} {rows:>9} {o['blocks']:>8} {str(same):>5} {o['seconds']:>7.1f} {u['seconds']:>7.1f} "
                  f"{u['seconds'] / o['seconds']:>15.2f} {u['chunk_seconds'] / o['chunk_seconds']:>21.1f} "
                  f"{o['peak_mb']:>11.0f} {u['peak_mb']:>6.0f} {o['peak_mb'] / u['peak_mb']:>9.2f} "
                  f"{o['anon_mb']:>12.0f} {u['anon_mb']:>6.0f} {o['anon_mb'] / u['anon_mb']:>9.2f}", flush=True)
            if rows > USER_BATCH:
                print(f"  note: {rows} rows > {USER_BATCH}: the user's method drops a remainder per batch")


if __name__ == "__main__":
    main()
