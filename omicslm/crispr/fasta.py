"""Plain fasta reading and writing, with the alphabet checks every CRISPR step shares."""

from __future__ import annotations

import logging
import os
import re
from typing import Iterable, Iterator

from omicslm.errors import InputError
from omicslm.io.atomic import atomic_open

log = logging.getLogger(__name__)

ACGT = re.compile(r"^[ACGT]*$")
BAD_RECORD_POLICIES = ("error", "skip")
_COMPLEMENT = str.maketrans("ACGT", "TGCA")


def revcomp(seq: str) -> str:
    """Reverse complement of an upper-case ACGT sequence."""
    return seq.translate(_COMPLEMENT)[::-1]


def iter_fasta(path: str | os.PathLike, *, allow_empty: bool = False) -> Iterator[tuple[str, str]]:
    """Yield ``(name, sequence)`` per record; the name is the header up to the first blank, sequence upper-cased.

    Raises
    ------
    InputError
        For text before the first header, a record without a name, or (unless ``allow_empty``) a file
        without any record (0 bytes, or only blank lines).
    """
    name, chunks = None, []
    with open(path) as fh:
        for lineno, line in enumerate(fh, 1):
            line = line.strip()
            if not line:
                continue
            if line.startswith(">"):
                if name is not None:
                    yield name, "".join(chunks).upper()
                parts = line[1:].split()
                if not parts:
                    raise InputError(path, "fasta header without a name", record=f"line {lineno}")
                name, chunks = parts[0], []
            else:
                if name is None:
                    raise InputError(path, "sequence text before the first '>' header", record=f"line {lineno}")
                chunks.append(line)
    if name is not None:
        yield name, "".join(chunks).upper()
    elif not allow_empty:
        raise InputError(path, "empty fasta: no '>' record" + (" (0 bytes)" if os.path.getsize(path) == 0 else ""))


def read_fasta(path: str | os.PathLike, *, on_bad_record: str = "error") -> dict[str, str]:
    """Read a fasta of DNA records, checking alphabet (ACGT, any case) and unique names.

    Parameters
    ----------
    path : path
    on_bad_record : {"error", "skip"}
        What to do with a record holding a non-ACGT character (e.g. N) or a duplicate
        name: raise ``InputError`` naming it, or skip it (logged and counted).

    Returns
    -------
    dict
        name -> upper-case sequence, in file order.
    """
    if on_bad_record not in BAD_RECORD_POLICIES:
        raise ValueError(f"on_bad_record must be one of {BAD_RECORD_POLICIES}, got {on_bad_record!r}")
    records: dict[str, str] = {}
    skipped = {"non-ACGT": 0, "duplicate name": 0}
    for name, seq in iter_fasta(path):
        problem, kind = None, None
        if name in records:
            problem, kind = "duplicate record name", "duplicate name"
        elif not ACGT.match(seq):
            bad = sorted(set(re.sub(r"[ACGT]", "", seq)))
            problem, kind = f"non-ACGT character(s) {''.join(bad)!r} in the sequence", "non-ACGT"
        if problem:
            if on_bad_record == "error":
                raise InputError(path, problem, record=name)
            log.warning("%s: skipping record %s: %s", path, name, problem)
            skipped[kind] += 1
            continue
        records[name] = seq
    if any(skipped.values()):
        log.warning("%s: skipped %s", path, ", ".join(f"{n} {k}" for k, n in skipped.items() if n))
    log.info("%s: %d records", path, len(records))
    return records


def write_fasta(path: str | os.PathLike, records: Iterable[tuple[str, str]], width: int | None = None) -> int:
    """Write ``(name, sequence)`` records atomically; one sequence line each unless ``width``. Returns the count."""
    n = 0
    with atomic_open(path) as fh:
        for name, seq in records:
            fh.write(f">{name}\n")
            if width:
                for i in range(0, len(seq), width):
                    fh.write(seq[i:i + width] + "\n")
            else:
                fh.write(seq + "\n")
            n += 1
    return n
