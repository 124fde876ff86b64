"""DNABERT k-mer tokenisation: vocabulary, overlapping k-mers, and the model-ready dataset file.

The vocabulary is DNABERT's: ``[PAD] [UNK] [CLS] [SEP] [MASK]`` then every k-mer in
``itertools.product("ATCG", repeat=k)`` order (4,101 tokens for k = 6), so a DNABERT-6
checkpoint's embeddings line up with these ids.
"""

from __future__ import annotations

import itertools
import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd

from omicslm.crispr.join import read_guides
from omicslm.errors import InputError
from omicslm.io.atomic import atomic_open, atomic_path

log = logging.getLogger(__name__)

SPECIAL = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
PAD, UNK, CLS, SEP, MASK = range(len(SPECIAL))


def dnabert_vocab(k: int = 6) -> list[str]:
    """The DNABERT-k token list (specials, then ``product('ATCG', repeat=k)``)."""
    return list(SPECIAL) + ["".join(p) for p in itertools.product("ATCG", repeat=k)]


def write_vocab(path: str | os.PathLike, k: int = 6) -> None:
    """Write ``vocab.txt`` (one token per line, id = line number), as BERT tokenizers read it."""
    with atomic_open(path) as fh:
        fh.write("\n".join(dnabert_vocab(k)) + "\n")


def kmer_ids(seq: str, k: int = 6, *, add_special: bool = True) -> list[int]:
    """Token ids of the overlapping k-mers of ``seq`` (stride 1), optionally wrapped in [CLS] ... [SEP].

    Parameters
    ----------
    seq : str
        DNA; k-mers with characters outside ACGT map to [UNK].

    Returns
    -------
    list of int, length ``len(seq) - k + 1`` (+ 2 with ``add_special``)
    """
    index = _index(k)
    ids = [index.get(seq[i:i + k], UNK) for i in range(len(seq) - k + 1)]
    return [CLS, *ids, SEP] if add_special else ids


_INDEX_CACHE: dict[int, dict[str, int]] = {}


def _index(k: int) -> dict[str, int]:
    if k not in _INDEX_CACHE:
        _INDEX_CACHE[k] = {tok: i for i, tok in enumerate(dnabert_vocab(k))}
    return _INDEX_CACHE[k]


def check_vocab_file(path: str | os.PathLike, k: int) -> None:
    """Raise ``InputError`` when a checkpoint's ``vocab.txt`` is not the DNABERT-k vocabulary in order."""
    tokens = Path(path).read_text().split()
    expected = dnabert_vocab(k)
    if tokens[:len(expected)] != expected:
        first = next((i for i, (a, b) in enumerate(zip(tokens, expected)) if a != b), min(len(tokens), len(expected)))
        raise InputError(path, f"not the DNABERT-{k} vocabulary: token {first} is "
                               f"{tokens[first] if first < len(tokens) else '<missing>'!r}, expected {expected[first]!r}")


def build_dataset(guides: str | os.PathLike, split: str | os.PathLike, out: str | os.PathLike, *,
                  k: int = 6, energy: str | os.PathLike | None = None) -> int:
    """Write the model-ready ``dataset.npz`` shared by every model.

    Arrays (n guides):

    * ``id`` str (n,), ``role`` str (n,) in train/dev/test, ``mer30`` str (n,)
    * ``input_ids`` int64 (n, 30 - k + 3): [CLS] k-mers [SEP]
    * ``efficiency`` float32 (n,), 0–100
    * ``energy`` float32 (n,): binding energy, NaN when not computed

    Returns
    -------
    int
        Number of guides.
    """
    df = read_guides(guides)
    roles = pd.read_csv(split, sep="\t", dtype={"id": str}).set_index("id").role
    missing = sorted(set(df.id) - set(roles.index))
    if missing:
        raise InputError(split, f"{len(missing)} guides have no role, e.g. {', '.join(missing[:3])}")
    if energy is not None:
        dg = pd.read_csv(energy, sep="\t", dtype={"id": str}).set_index("id").dg_bind
        energies = df.id.map(dg).to_numpy(np.float32)
    else:
        energies = np.full(len(df), np.nan, np.float32)
    ids = np.array([kmer_ids(s, k) for s in df.mer30], dtype=np.int64)
    with atomic_path(out, suffix=".npz") as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, id=df.id.to_numpy(str), role=df.id.map(roles).to_numpy(str), mer30=df.mer30.to_numpy(str),
                     input_ids=ids, efficiency=df.efficiency.to_numpy(np.float32), energy=energies)
    log.info("tokenised %d guides into %d DNABERT-%d tokens each", len(df), ids.shape[1], k)
    return len(df)


def load_dataset(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Load ``dataset.npz`` into a dict of arrays (see :func:`build_dataset`)."""
    with np.load(path, allow_pickle=False) as z:
        return {key: z[key] for key in z.files}
