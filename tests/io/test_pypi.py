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
