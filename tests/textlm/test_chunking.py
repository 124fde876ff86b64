from itertools import chain

import datasets
import numpy as np
import pytest

from omicslm.errors import InputError
from omicslm.textlm.chunking import (chunk_corpus, concat_then_slice, iter_blocks, iter_id_batches, load_backend,
                                     tokenize_corpus)
from omicslm.textlm.corpus import build_corpus


def group_texts(examples, block_size):
    """The user's (run_clm.py) concatenation, applied with one huge map batch."""
    concatenated = list(chain(*examples["input_ids"]))
    total = len(concatenated) // block_size * block_size
    return {"input_ids": [concatenated[i:i + block_size] for i in range(0, total, block_size)]}


@pytest.mark.parametrize("block_size", [1, 3, 7, 64])
@pytest.mark.parametrize("seed", [0, 1])
def test_streaming_blocks_equal_concat_then_slice(block_size, seed):
    rng = np.random.default_rng(seed)
    rows = [rng.integers(0, 1000, rng.integers(0, 20)).tolist() for _ in range(200)]
    # batches of uneven size, some empty, as record batches of a real dataset are
    cuts = np.sort(rng.integers(0, len(rows), 15))
    batches = [np.array([i for r in part for i in r], dtype=np.int32) for part in np.split(np.array(rows, object), cuts)]
    got = list(iter_blocks(batches, block_size))
    got = np.concatenate(got) if got else np.empty((0, block_size), np.int32)
    ref = concat_then_slice(rows, block_size)
    assert got.dtype == ref.dtype == np.int32 and got.shape == ref.shape
    assert got.tobytes() == ref.tobytes()


@pytest.fixture
def tokenized(tmp_path, text_files, tiny_tokenizers):
    build_corpus(tmp_path / "corpus", files=text_files, validation_fraction=0.2, seed=0)
    counts = tokenize_corpus(tmp_path / "corpus", tiny_tokenizers / "clm", tmp_path / "tok", batch_rows=3)
    return tmp_path / "tok", counts


def test_chunk_corpus_matches_concat_then_slice_and_the_users_method(tmp_path, tokenized):
    tok_dir, counts = tokenized
    block = 16
    blocks = chunk_corpus(tok_dir, tmp_path / "chunks", block_size=block, batch_rows=4)
    chunks, tok = datasets.load_from_disk(str(tmp_path / "chunks")), datasets.load_from_disk(str(tok_dir))
    for split in ("train", "validation"):
        ours = np.asarray(chunks[split].with_format("numpy")["input_ids"], dtype=np.int32)
        ref = concat_then_slice(tok[split]["input_ids"], block)
        assert ours.tobytes() == ref.tobytes() and ours.shape == (counts[split] // block, block)
        assert blocks[split] == len(ours) > 0
        users = tok[split].map(group_texts, fn_kwargs={"block_size": block}, batched=True, batch_size=1_000_000,
                               keep_in_memory=True)
        assert users["input_ids"] == ours.tolist()
    assert chunks["train"].features["input_ids"].feature.dtype == "int32"


def test_id_batches_cover_sliced_datasets(tokenized):
    tok_dir, _ = tokenized
    ds = datasets.load_from_disk(str(tok_dir))["train"].select(range(2, 9))
    flat = np.concatenate(list(iter_id_batches(ds, batch_rows=2)))
    assert flat.tolist() == [i for row in ds["input_ids"] for i in row]


def test_corpus_shorter_than_a_block_names_both_sizes(tmp_path, tokenized):
    tok_dir, counts = tokenized
    too_big = counts["validation"] + 1
    with pytest.raises(InputError) as e:
        chunk_corpus(tok_dir, tmp_path / "chunks", block_size=too_big)
    msg = str(e.value)
    assert f"{counts['validation']} tokens < block_size {too_big}" in msg and "split validation" in msg
    assert str(tok_dir) in msg
    assert not (tmp_path / "chunks").exists() and not list(tmp_path.glob(".chunks*"))


@pytest.mark.parametrize("kind", ["clm", "mlm"])
def test_rust_backend_encodes_like_the_transformers_tokenizer(kind, tiny_tokenizers, text_files):
    from omicslm.textlm.tokenizer import load_tokenizer

    folder = tiny_tokenizers / kind
    wrapper, backend = load_tokenizer(folder), load_backend(folder)
    texts = [line for f in text_files for line in f.read_text(encoding="utf-8").splitlines()]
    texts += ["", "  leading spaces", "x" * 5000, f"text with {wrapper.eos_token} inside"]
    ref = wrapper(texts, add_special_tokens=False)["input_ids"]
    assert [e.ids for e in backend.encode_batch(texts, add_special_tokens=False)] == ref
    assert backend.get_vocab_size() == len(wrapper)
    assert max(len(r) for r in ref) > 512  # no truncation from a saved setting


def test_malformed_tokenizer_json_names_the_file(tmp_path):
    (tmp_path / "tokenizer.json").write_text("{not json")
    with pytest.raises(InputError, match="tokenizer.json.*cannot load tokenizer"):
        load_backend(tmp_path)
