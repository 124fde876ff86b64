import os

import pytest

from omicslm.io.atomic import atomic_open, atomic_path


def test_atomic_open_writes_and_leaves_no_temp(tmp_path):
    out = tmp_path / "sub" / "table.tsv"
    with atomic_open(out) as fh:
        fh.write("a\tb\n")
    assert out.read_text() == "a\tb\n"
    assert sorted(p.name for p in out.parent.iterdir()) == ["table.tsv"]
    # same permissions a plain open() would give, not mkstemp's 0600
    assert os.stat(out).st_mode & 0o777 == 0o666 & ~_umask()


def _umask():
    m = os.umask(0)
    os.umask(m)
    return m


def test_failure_keeps_old_artefact_and_removes_temp(tmp_path):
    out = tmp_path / "x.txt"
    out.write_text("old")
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_open(out) as fh:
            fh.write("half")
            raise RuntimeError("boom")
    assert out.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["x.txt"]


def test_failure_without_old_leaves_nothing(tmp_path):
    out = tmp_path / "y.vcf.gz"
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(out) as tmp:
            assert tmp.name.endswith(".vcf.gz") and tmp.parent == tmp_path
            tmp.write_bytes(b"partial")
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_atomic_open_refuses_read_modes(tmp_path):
    with pytest.raises(ValueError):
        with atomic_open(tmp_path / "z", "r"):
            pass
