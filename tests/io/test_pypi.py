"""Fetched archives: the pinned hash is checked, and no archive member is written outside its folder."""

import hashlib
import io
import tarfile
from pathlib import Path

import pytest

from omicslm.errors import InputError
from omicslm.io import pypi
from omicslm.scrna import fetch


def test_a_wrong_hash_is_a_clear_error_and_the_right_one_passes(tmp_path):
    f = tmp_path / "pkg-1.0.tar.gz"
    f.write_bytes(b"some archive bytes")
    good = hashlib.sha256(b"some archive bytes").hexdigest()
    pypi.check_sha256(f, good, "pkg==1.0")
    pypi.check_sha256(f, good.upper(), "pkg==1.0")
    with pytest.raises(InputError) as e:
        pypi.check_sha256(f, "0" * 64, "pkg==1.0")
    assert "pkg-1.0.tar.gz" in str(e.value) and good in str(e.value) and "0" * 64 in str(e.value)
    assert "pkg==1.0" in str(e.value) and "downloads.sha256" in str(e.value)


def test_the_pinned_hash_is_checked_after_pip_download(tmp_path, monkeypatch):
    def fake_run(cmd, **kw):  # pip's part: one file in the destination folder
        Path(cmd[cmd.index("-d") + 1], "pkg-1.0-py3-none-any.whl").write_bytes(b"wheel")

        class Done:
            returncode, stderr = 0, ""
        return Done()

    monkeypatch.setattr(pypi.subprocess, "run", fake_run)
    with pytest.raises(InputError, match="is not the"):
        pypi.pip_download("pkg==1.0", tmp_path / "a", sdist=False, sha256="1" * 64)
    ok = pypi.pip_download("pkg==1.0", tmp_path / "b", sdist=False, sha256=hashlib.sha256(b"wheel").hexdigest())
    assert ok.read_bytes() == b"wheel"


def _sdist_with(tmp_path, members: dict[str, bytes]) -> Path:
    path = tmp_path / "scanpy-9.9.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_an_archive_member_climbing_out_of_the_folder_is_refused(tmp_path, monkeypatch):
    sdist = _sdist_with(tmp_path, {"scanpy-9.9/data/x.zarr/.zattrs": b"{}",
                                   "scanpy-9.9/data/x.zarr/../../../../evil.txt": b"owned"})
    monkeypatch.setattr(fetch, "pip_download", lambda *a, **k: sdist)
    out = tmp_path / "out" / "scanpy"
    with pytest.raises(InputError, match="outside"):
        fetch.fetch_scanpy_data(out, requirement="scanpy==9.9", members={"data/x.zarr": "x.zarr"})
    assert not list(tmp_path.rglob("evil.txt")) and not out.exists()


def test_archive_members_inside_the_folder_are_extracted(tmp_path, monkeypatch):
    sdist = _sdist_with(tmp_path, {"scanpy-9.9/data/x.zarr/.zattrs": b"{}", "scanpy-9.9/data/x.zarr/X/0": b"1"})
    monkeypatch.setattr(fetch, "pip_download", lambda *a, **k: sdist)
    out = tmp_path / "out" / "scanpy"
    got = fetch.fetch_scanpy_data(out, requirement="scanpy==9.9", members={"data/x.zarr": "x.zarr"})
    assert (got["x.zarr"] / "X" / "0").read_bytes() == b"1" and (got["x.zarr"] / ".zattrs").is_file()


def _index_with_sdist(tmp_path, payload: bytes = b"print('hi')") -> tuple[str, Path, str]:
    """A PEP 503 file:// index listing one sdist whose setup.py would leave a marker file if it ever ran."""
    marker = tmp_path / "build-code-ran"
    setup = f"open({str(marker)!r}, 'w').write('ran')\n".encode()
    sdist = _sdist_with(tmp_path, {"my_pkg-1.0/setup.py": setup, "my_pkg-1.0/data.txt": payload})
    page = tmp_path / "simple" / "my-pkg"
    page.mkdir(parents=True)
    files = tmp_path / "files"
    files.mkdir()
    target = files / "my_pkg-1.0.tar.gz"
    sdist.rename(target)
    digest = hashlib.sha256(target.read_bytes()).hexdigest()
    (page / "index.html").write_text(
        f'<html><body><a href="../../files/my_pkg-1.0-py3-none-any.whl">wheel</a>'
        f'<a href="../../files/my_pkg-1.0.tar.gz#sha256={digest}">my_pkg-1.0.tar.gz</a>'
        f'<a href="../../files/my_pkg-1.1.tar.gz">newer</a></body></html>')
    return (tmp_path / "simple").as_uri(), marker, digest


def test_an_sdist_is_fetched_from_the_index_without_running_its_build_code(tmp_path):
    index, marker, digest = _index_with_sdist(tmp_path)
    got = pypi.fetch_sdist("My.Pkg==1.0", tmp_path / "dl", sha256=digest, indexes=[index], find_links=[])
    assert got.name == "my_pkg-1.0.tar.gz" and hashlib.sha256(got.read_bytes()).hexdigest() == digest
    assert not marker.exists()  # pip download would have run setup.py to read the metadata
    with tarfile.open(got) as tar:
        assert tar.extractfile("my_pkg-1.0/data.txt").read() == b"print('hi')"


def test_an_sdist_with_another_hash_or_none_listed_is_a_clear_error(tmp_path):
    index, marker, digest = _index_with_sdist(tmp_path)
    with pytest.raises(InputError) as e:
        pypi.fetch_sdist("my-pkg==1.0", tmp_path / "dl", sha256="0" * 64, indexes=[index], find_links=[])
    assert "0" * 64 in str(e.value) and digest in str(e.value) and "downloads.sha256" in str(e.value)
    assert not list((tmp_path / "dl").iterdir())  # the mismatching file is not left behind
    with pytest.raises(InputError, match="no source distribution of my-pkg==2.0"):
        pypi.fetch_sdist("my-pkg==2.0", tmp_path / "dl", sha256=digest, indexes=[index], find_links=[])
    with pytest.raises(InputError, match="pinned as name==version"):
        pypi.fetch_sdist("my-pkg>=1", tmp_path / "dl", indexes=[index], find_links=[])
    assert not marker.exists()


def test_an_sdist_in_a_find_links_folder_is_found_and_pip_download_of_an_sdist_runs_no_pip(tmp_path, monkeypatch):
    _, marker, digest = _index_with_sdist(tmp_path)
    got = pypi.fetch_sdist("my_pkg==1.0", tmp_path / "dl", sha256=digest, indexes=[], find_links=[str(tmp_path / "files")])
    assert got.read_bytes() == (tmp_path / "files" / "my_pkg-1.0.tar.gz").read_bytes()

    def no_pip(cmd, **kw):
        assert "download" not in cmd, "pip download must not run for an sdist"
        class Listed:
            returncode, stdout, stderr = 0, f"global.find-links='{tmp_path / 'files'}'\nglobal.no-index='true'\n", ""
        return Listed()

    monkeypatch.setattr(pypi.subprocess, "run", no_pip)
    got = pypi.pip_download("my_pkg==1.0", tmp_path / "dl2", sdist=True, sha256=digest)
    assert got.name == "my_pkg-1.0.tar.gz" and not marker.exists()
