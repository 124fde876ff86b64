"""Crash-safe output: write to a temporary file or folder beside the target, make it durable, then rename.

A step that fails or is killed leaves either the old artefact or none, never a half-written
one, because ``os.replace`` within one directory is atomic on POSIX. Before the rename the new
file's bytes are fsynced, and after it the directory, so a power cut cannot leave the new name
pointing at an empty file (the classic ext4/XFS delayed-allocation failure).

Every temporary is named ``.<name>.tmp<pid>-<random><suffix>`` beside its target. A SIGKILL
cannot run cleanup, so the next write of the same target removes the temporaries whose process
is gone (:func:`sweep_stale`): a killed step leaves no litter behind once it is rerun.

The one folder helper is :func:`atomic_dir` (and :func:`scratch_dir` the one working folder beside
an output); :func:`publish_with_index` renames a bgzipped file
and then its index, so an index is never newer than the file it indexes.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

log = logging.getLogger(__name__)


def current_umask() -> int:
    """The process umask, read without changing it (``/proc/self/status``; Linux >= 4.7).

    ``os.umask`` can only be read by setting it, which races with other threads creating files
    in between (they would get mode 0o666/0o777); elsewhere that dance is the fallback.
    """
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def fsync_path(path: str | os.PathLike) -> None:
    """fsync a file, or a folder's entries (where the filesystem allows fsync on a directory)."""
    flags = os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if Path(path).is_dir() else 0)
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    except OSError as exc:  # some filesystems refuse fsync on a directory
        if exc.errno not in (errno.EINVAL, errno.EBADF, errno.ENOTSUP):
            raise
    finally:
        os.close(fd)


def fsync_tree(path: str | os.PathLike) -> None:
    """fsync every file and folder under ``path`` (a file: just it), deepest first."""
    path = Path(path)
    if path.is_dir():
        for root, dirs, files in os.walk(path, topdown=False):
            for name in files:
                p = Path(root) / name
                if not p.is_symlink():
                    fsync_path(p)
            fsync_path(root)
    elif path.exists():
        fsync_path(path)


def _prefix(path: Path) -> str:
    return f".{path.name}.tmp{os.getpid()}-"


def temp_prefix(path: str | os.PathLike) -> str:
    """The name prefix of this process's temporaries of ``path`` (for ``tempfile.mkstemp``/``mkdtemp`` in
    ``path``'s folder): what :func:`sweep_stale` removes once this process is gone."""
    return _prefix(Path(path))


_STALE = re.compile(r"\.tmp(\d+)-")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def sweep_stale(path: str | os.PathLike) -> list[Path]:
    """Remove the temporaries of ``path`` (files or folders) left by a process that no longer runs; returns them.

    Only names of this module's pattern for this very target are touched, and never one of a live
    process (a target has one writer at a time: Snakemake runs one job per output).
    """
    path = Path(path)
    head = f".{path.name}.tmp"
    removed = []
    if not path.parent.is_dir():
        return removed
    for p in path.parent.iterdir():
        if not p.name.startswith(head):
            continue
        m = _STALE.match(p.name, len(path.name) + 1)
        if m is None or _alive(int(m.group(1))):
            continue
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
        removed.append(p)
    if removed:
        log.info("removed %d stale temporaries of %s left by a killed step: %s", len(removed), path,
                 ", ".join(p.name for p in removed))
    return removed


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; fsync it and rename it onto ``path`` on success.

    The temporary name keeps the final suffix (e.g. ``.vcf.gz``) unless ``suffix`` is
    given, so tools that sniff the extension behave. On any exception the temporary
    file is removed and the exception propagates; a full disk becomes an ``OSError`` (ENOSPC) naming ``path``.

    >>> with atomic_path("out.tsv") as tmp:          # doctest: +SKIP
    ...     tmp.write_text("a\\tb\\n")
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sweep_stale(path)
    if suffix is None:
        suffix = "".join(path.suffixes) or ".tmp"
    fd, tmp = tempfile.mkstemp(prefix=_prefix(path), suffix=suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        if tmp.is_file():
            # mkstemp creates 0600; give the artefact the permissions a plain open() would.
            os.chmod(tmp, 0o666 & ~current_umask())
            fsync_path(tmp)
        os.replace(tmp, path)
        fsync_path(path.parent)
    except BaseException as exc:
        full = _disk_full(exc, path.parent)
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        if full:
            raise _full_disk_error(path) from exc
        raise


def _disk_full(exc: BaseException, folder: Path) -> bool:
    """Whether ``exc`` is a write that failed for want of space (or quota) in ``folder``.

    Some writers (htslib's BGZF through pysam) raise an OSError with no errno on a short write:
    then the free space of the filesystem decides (checked before the temporary is removed).
    """
    if not isinstance(exc, OSError):
        return False
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    if exc.errno is None:
        with contextlib.suppress(OSError):
            st = os.statvfs(folder)
            return st.f_bavail * st.f_frsize < _FULL_BYTES
    return False


#: below this many free bytes a failed write with no errno counts as a full disk
_FULL_BYTES = 1 << 20


def _full_disk_error(path: Path) -> OSError:
    return OSError(errno.ENOSPC, f"no space left on the device while writing {path} (nothing was kept: free "
                                 f"space or point the output elsewhere, then rerun)", str(path))


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", **kwargs):
    """Open a temporary file for writing; fsync and rename it onto ``path`` when closed cleanly."""
    if "r" in mode or "a" in mode:
        raise ValueError(f"atomic_open is for writing only, got mode {mode!r}")
    with atomic_path(path) as tmp:
        with open(tmp, mode, **kwargs) as fh:
            yield fh


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty temporary folder beside ``path``; on success fsync it and move it onto ``path``.

    The folder counterpart of :func:`atomic_path` (``datasets.save_to_disk``, ``save_pretrained``,
    checkpoints copied out, extracted archives): a killed or failed step leaves the old folder or
    none, never a half-written one. An existing ``path`` is moved aside, the new one renamed in,
    and the old one removed; on an exception the new folder is removed and ``path`` stays as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sweep_stale(path)
    tmp = Path(tempfile.mkdtemp(prefix=_prefix(path), suffix=".dir", dir=path.parent))
    old = None
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~current_umask())
        fsync_tree(tmp)
        if path.exists() or path.is_symlink():
            old = Path(tempfile.mkdtemp(prefix=_prefix(path), suffix=".old", dir=path.parent))
            os.replace(path, old / "x")
        os.replace(tmp, path)
        fsync_path(path.parent)
    except BaseException as exc:
        full = _disk_full(exc, path.parent)
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and (old / "x").exists() and not path.exists():
            os.replace(old / "x", path)  # the rename in failed: put the old folder back
        if full:
            raise _full_disk_error(path) from exc
        raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def scratch_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty working folder beside ``path`` (same filesystem) for the step that writes ``path``.

    It is removed when the block ends, however it ends; one left by a killed step is removed by the
    next write of ``path`` (:func:`sweep_stale`), so scratch space never outlives a rerun. The path is
    absolute: a tool run with the folder as its working directory must not resolve it twice.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sweep_stale(path)
    tmp = Path(tempfile.mkdtemp(prefix=_prefix(path), suffix=".scratch", dir=path.parent)).resolve()
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def atomic_indexed(path: str | os.PathLike, index_suffix: str = ".tbi") -> Iterator[Path]:
    """Yield a temporary path beside ``path`` for a bgzipped file the block writes *and indexes*
    (``tmp + index_suffix``, e.g. ``pysam.tabix_index``); on success both are renamed onto ``path``,
    the file first (:func:`publish_with_index`). On an exception both temporaries are removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sweep_stale(path)
    fd, tmp = tempfile.mkstemp(prefix=_prefix(path), suffix="".join(path.suffixes) or ".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        mode = 0o666 & ~current_umask()
        os.chmod(tmp, mode)
        os.chmod(f"{tmp}{index_suffix}", mode)
        publish_with_index(tmp, path, index_suffix)
    except BaseException as exc:
        full = _disk_full(exc, path.parent)
        for f in (tmp, Path(f"{tmp}{index_suffix}")):
            with contextlib.suppress(FileNotFoundError):
                f.unlink()
        if full:
            raise _full_disk_error(path) from exc
        raise


def publish_with_index(tmp: str | os.PathLike, path: str | os.PathLike, index_suffix: str = ".tbi") -> None:
    """Rename a finished bgzipped ``tmp`` and then its index ``tmp + index_suffix`` onto ``path`` (+ suffix).

    The file goes first: a crash between the two renames leaves the new file with an old or no
    index (older than its file: the step reruns), never an index newer than the file it describes.
    Both are fsynced before, the folder after.
    """
    tmp, path = Path(tmp), Path(path)
    tmp_index, index = Path(f"{tmp}{index_suffix}"), Path(f"{path}{index_suffix}")
    fsync_path(tmp)
    fsync_path(tmp_index)
    os.replace(tmp, path)
    os.replace(tmp_index, index)
    fsync_path(path.parent)
