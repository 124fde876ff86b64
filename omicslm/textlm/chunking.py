"""Tokenize the corpus, then concatenate and cut into ``block_size`` blocks in bounded memory.

The Hugging Face recipe (``run_clm.py``'s ``group_texts``) concatenates a whole ``map`` batch
in Python lists; with ``batch_size=1_000_000`` that holds the corpus in memory at once. Here
the tokenized column is read as Arrow record batches of ``batch_rows`` rows; each batch's
flat ids are appended to a carry of fewer than ``block_size`` ids, whole blocks are written
to an Arrow stream, the rest carried on. Memory is O(batch_rows + block_size), and the blocks
equal those of concatenating everything and slicing (:func:`concat_then_slice`), the
remainder dropped.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from omicslm.errors import InputError
from omicslm.io.atomic import atomic_dir, scratch_dir
from omicslm.textlm.tokenizer import load_tokenizer

log = logging.getLogger(__name__)

ID_DTYPE = np.int32  # vocabularies here have < 2**31 ids; halves the artefacts vs int64


def load_backend(folder: str | os.PathLike):
    """The Rust ``tokenizers.Tokenizer`` of a tokenizer folder, without the ``transformers`` wrapper.

    A ``save_pretrained`` folder holds ``tokenizer.json``, which ``tokenizers`` loads directly:
    about 40 MB for the GPT-2 BPE, where ``GPT2TokenizerFast.from_pretrained`` holds about 250 MB
    (Python copies of vocabulary and merges). The wrapper encodes through this same object
    (``encode_batch``), so the ids are identical. Folders with only ``vocab.json`` + ``merges.txt``
    go through :func:`omicslm.textlm.tokenizer.load_tokenizer` and use its backend.
    """
    folder = Path(folder)
    if not (folder / "tokenizer.json").is_file():
        return load_tokenizer(folder).backend_tokenizer
    from tokenizers import Tokenizer

    try:
        tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
    except Exception as e:  # tokenizers raises a plain Exception on malformed JSON
        raise InputError(folder / "tokenizer.json", f"cannot load tokenizer: {e}") from None
    if tok.get_vocab_size() <= 1:
        raise InputError(folder / "tokenizer.json", f"tokenizer loaded empty ({tok.get_vocab_size()} ids)")
    tok.no_truncation()  # a saved truncation/padding setting must not cut or pad corpus rows
    tok.no_padding()
    return tok


def _encode(batch: dict, tok) -> dict:
    return {"input_ids": [e.ids for e in tok.encode_batch(batch["text"], add_special_tokens=False)]}


def tokenize_dataset(ds, tok, *, num_proc: int = 1, batch_rows: int = 1000, cache_file: str | None = None):
    """Tokenize the ``text`` column of ``ds`` into an ``input_ids`` column (int32 lists), batched.

    Parameters
    ----------
    ds : datasets.Dataset
        Rows with a ``text`` column.
    tok : tokenizers.Tokenizer or transformers fast tokenizer
        A ``transformers`` tokenizer is used through its Rust backend (same ids).
    num_proc : int
        Worker processes for ``Dataset.map`` (1 = in process).
    batch_rows : int
        Rows per tokenizer call.
    cache_file : str, optional
        Where ``map`` writes its Arrow output (default: ``datasets``' cache next to the input).
    """
    import datasets

    if num_proc > 1:
        # the worker processes already use the cores; Rust threads inside each would oversubscribe
        os.environ["TOKENIZERS_PARALLELISM"] = "false"
    tok = getattr(tok, "backend_tokenizer", tok)
    features = datasets.Features({"input_ids": datasets.List(datasets.Value("int32"))})
    return ds.map(_encode, fn_kwargs={"tok": tok}, batched=True, batch_size=batch_rows,
                  num_proc=num_proc if num_proc > 1 and len(ds) >= num_proc else None,
                  remove_columns=ds.column_names, features=features, cache_file_name=cache_file,
                  desc="tokenize")


def tokenize_corpus(corpus_dir: str | os.PathLike, tokenizer_dir: str | os.PathLike, out_dir: str | os.PathLike,
                    *, num_proc: int = 1, batch_rows: int = 1000) -> dict[str, int]:
    """Tokenize every split of the saved corpus; save the ``input_ids`` DatasetDict to ``out_dir``.

    Returns
    -------
    dict
        Tokens per split.
    """
    import datasets

    tok = load_backend(tokenizer_dir)
    corpus = datasets.load_from_disk(str(corpus_dir))
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with scratch_dir(out_dir) as cache, atomic_dir(out_dir) as stage:
        out = datasets.DatasetDict({
            name: tokenize_dataset(ds, tok, num_proc=num_proc, batch_rows=batch_rows,
                                   cache_file=os.path.join(cache, f"{name}.arrow"))
            for name, ds in corpus.items()})
        out.save_to_disk(str(stage))
        counts = {name: _n_tokens(ds) for name, ds in out.items()}
    log.info("tokenized with %s (%d ids): %s tokens per split", tokenizer_dir, tok.get_vocab_size(), counts)
    return counts


def _n_tokens(ds) -> int:
    import pyarrow.compute as pc

    return int(pc.sum(pc.list_value_length(ds.data.column("input_ids"))).as_py() or 0)


def iter_id_batches(ds, *, batch_rows: int = 1000) -> Iterator[np.ndarray]:
    """Yield the flat token ids of ``batch_rows`` rows at a time, shape (n_ids,), from the Arrow data."""
    import pyarrow as pa

    for table in ds.with_format("arrow").iter(batch_size=batch_rows):
        col = table.column("input_ids")
        for chunk in col.chunks:
            values = chunk.flatten()  # honours the slice offsets of the chunk
            yield values.to_numpy(zero_copy_only=False).astype(ID_DTYPE, copy=False) if len(values) else \
                np.empty(0, ID_DTYPE)
        del col, table
    pa.default_memory_pool().release_unused()


def iter_blocks(id_batches: Iterable[np.ndarray], block_size: int) -> Iterator[np.ndarray]:
    """Concatenate ``id_batches`` and yield them cut into whole blocks, remainder dropped.

    Yields
    ------
    ndarray, shape (n_blocks_in_batch, block_size)
        Consecutive blocks; together equal to ``concat_then_slice`` of the same ids.
    """
    if block_size < 1:
        raise ValueError(f"block_size must be >= 1, got {block_size}")
    carry = np.empty(0, ID_DTYPE)
    for ids in id_batches:
        buf = np.concatenate([carry, ids]) if carry.size else np.asarray(ids, dtype=ID_DTYPE)
        n = buf.size - buf.size % block_size
        if n:
            yield buf[:n].reshape(-1, block_size)
        carry = buf[n:].copy()  # copy: do not keep the whole batch alive through a view


def concat_then_slice(ids_per_row: Iterable[Iterable[int]], block_size: int) -> np.ndarray:
    """The straightforward reference: concatenate every row's ids, slice into blocks, drop the rest.

    Returns
    -------
    ndarray, int32, shape (n_tokens // block_size, block_size)
    """
    flat = np.fromiter((i for row in ids_per_row for i in row), dtype=ID_DTYPE)
    n = flat.size - flat.size % block_size
    return flat[:n].reshape(-1, block_size)


def write_blocks(blocks: Iterable[np.ndarray], path: str | os.PathLike, block_size: int) -> int:
    """Stream ``blocks`` into an Arrow IPC stream file with one ``input_ids`` list<int32> column.

    This is the file format ``datasets.Dataset.from_file`` memory-maps. Returns the block count.
    """
    import pyarrow as pa

    schema = pa.schema([pa.field("input_ids", pa.list_(pa.int32()))])
    n_blocks = 0
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_stream(sink, schema) as writer:
        for b in blocks:
            offsets = pa.array(np.arange(0, b.size + 1, block_size, dtype=np.int32))
            column = pa.ListArray.from_arrays(offsets, pa.array(b.reshape(-1), type=pa.int32()))
            writer.write_batch(pa.record_batch([column], schema=schema))
            n_blocks += len(b)
    return n_blocks


def chunk_dataset(ds, path: str | os.PathLike, *, block_size: int, batch_rows: int = 1000, name: str = "train",
                  source: str | os.PathLike = "tokenized corpus"):
    """Chunk one tokenized split into ``path`` (Arrow stream) and return it as a memory-mapped Dataset.

    Raises
    ------
    InputError
        When the split has fewer tokens than one block (names both sizes).
    """
    import datasets
    from tqdm import tqdm

    n_tokens = _n_tokens(ds)
    if n_tokens < block_size:
        raise InputError(source, f"corpus shorter than one block: {n_tokens} tokens < block_size {block_size}",
                         record=f"split {name}")
    batches = tqdm(iter_id_batches(ds, batch_rows=batch_rows), desc=f"chunk {name}", unit="batch",
                   total=-(-len(ds) // batch_rows), mininterval=5)
    n_blocks = write_blocks(iter_blocks(batches, block_size), path, block_size)
    log.info("%s: %d tokens -> %d blocks of %d (%d dropped)", name, n_tokens, n_blocks, block_size,
             n_tokens - n_blocks * block_size)
    return datasets.Dataset.from_file(str(path))


def chunk_corpus(tokenized_dir: str | os.PathLike, out_dir: str | os.PathLike, *, block_size: int,
                 batch_rows: int = 1000) -> dict[str, int]:
    """Cut every split of the saved tokenized corpus into ``block_size`` blocks; save to ``out_dir``.

    Returns
    -------
    dict
        Blocks per split.
    """
    import datasets

    tokenized = datasets.load_from_disk(str(tokenized_dir))
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with scratch_dir(out_dir) as tmp, atomic_dir(out_dir) as stage:
        out = datasets.DatasetDict({
            name: chunk_dataset(ds, Path(tmp) / f"{name}.arrow", block_size=block_size, batch_rows=batch_rows,
                                name=name, source=tokenized_dir)
            for name, ds in tokenized.items()})
        out.save_to_disk(str(stage))
        counts = {name: len(ds) for name, ds in out.items()}
        del out
    return counts
