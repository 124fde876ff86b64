import os
from pathlib import Path

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


def test_file_and_folder_are_fsynced_before_the_rename_and_the_umask_is_read_not_set(tmp_path, monkeypatch):
    from omicslm.io import atomic

    synced = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(os.readlink(f"/proc/self/fd/{fd}")) or real_fsync(fd))
    monkeypatch.setattr(os, "replace", lambda a, b: synced.append(("replace", str(b))) or real_replace(a, b))
    expected = 0o666 & ~_umask()

    def no_umask(*_):
        raise AssertionError("os.umask races with other threads: the umask must be read, not set")

    monkeypatch.setattr(os, "umask", no_umask)
    out = tmp_path / "t.tsv"
    with atomic.atomic_open(out) as fh:
        fh.write("x\n")
    assert os.stat(out).st_mode & 0o777 == expected
    tmp_name = next(s for s in synced if isinstance(s, str))
    assert Path(tmp_name).name.startswith(".t.tsv.tmp")  # the temporary's bytes synced ...
    assert synced.index(("replace", str(out))) == synced.index(tmp_name) + 1  # ... right before the rename
    assert synced[-1] == str(tmp_path)  # and the folder after it


def test_a_killed_writers_temporaries_are_swept_by_the_next_write_of_that_target(tmp_path):
    import subprocess
    import sys

    from omicslm.io.atomic import atomic_dir, sweep_stale

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True).stdout.strip()
    out = tmp_path / "t.tsv"
    stale = [tmp_path / f".t.tsv.tmp{dead}-abc.tsv", tmp_path / f".t.tsv.tmp{dead}-d.dir"]
    stale[0].write_text("half")
    stale[1].mkdir()
    (stale[1] / "f").write_text("half")
    live = tmp_path / f".t.tsv.tmp{os.getpid()}-zzz.tsv"  # a running writer's: left alone
    other = tmp_path / f".t.tsv.gz.tmp{dead}-q.gz"  # another target's
    live.write_text("busy")
    other.write_text("other")
    with atomic_open(out) as fh:
        fh.write("x\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([out.name, live.name, other.name])
    assert sweep_stale(tmp_path / "t.tsv.gz") == [other]
    folder = tmp_path / "model"
    (tmp_path / f".model.tmp{dead}-k.dir").mkdir()
    with atomic_dir(folder) as stage:
        (stage / "w").write_text("1")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([out.name, live.name, "model"])


def test_atomic_dir_replaces_a_folder_and_a_failure_keeps_the_old_one(tmp_path):
    from omicslm.io.atomic import atomic_dir

    out = tmp_path / "ds"
    with atomic_dir(out) as stage:
        (stage / "a").write_text("1")
    assert os.stat(out).st_mode & 0o777 == 0o777 & ~_umask()
    with atomic_dir(out) as stage:
        (stage / "b").write_text("2")
    assert [p.name for p in out.iterdir()] == ["b"] and [p.name for p in tmp_path.iterdir()] == ["ds"]
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_dir(out) as stage:
            (stage / "c").write_text("3")
            raise RuntimeError("boom")
    assert [p.name for p in out.iterdir()] == ["b"] and [p.name for p in tmp_path.iterdir()] == ["ds"]


def test_a_vcf_is_renamed_before_its_index(tmp_path, monkeypatch):
    import numpy as np

    from omicslm.io.vcf import write_vcf

    order = []
    real_replace = os.replace
    monkeypatch.setattr(os, "replace", lambda a, b: order.append(Path(b).name) or real_replace(a, b))
    out = tmp_path / "x.vcf.gz"
    write_vcf(out, contig="1", positions=np.array([5, 9]), ref=["A", "C"], alt=["G", "T"], samples=["s"],
              haplotypes=np.zeros((2, 1, 2), np.int8))
    # never an index newer than the file it describes (numba may rename its own cache files meanwhile)
    assert [n for n in order if n.startswith("x.vcf")] == ["x.vcf.gz", "x.vcf.gz.tbi"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.vcf.gz", "x.vcf.gz.tbi"]


@pytest.fixture
def small_fs(tmp_path):
    """A 1 MiB tmpfs mounted on a folder (needs root; skipped with the reason elsewhere)."""
    import subprocess

    mnt = tmp_path / "small"
    mnt.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a size-limited tmpfs needs root")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)  # lazy: a writer that failed may still hold an fd there


def test_a_full_disk_is_a_clear_error_naming_the_output_and_leaves_nothing(small_fs):
    import errno

    import numpy as np

    from omicslm.io.atomic import atomic_dir
    from omicslm.io.vcf import write_vcf

    with pytest.raises(OSError, match=r"no space left on the device while writing .*big\.tsv") as exc:
        with atomic_open(small_fs / "big.tsv") as fh:
            fh.write("x" * 3_000_000)
    assert exc.value.errno == errno.ENOSPC and exc.value.filename == str(small_fs / "big.tsv")
    rng = np.random.default_rng(0)
    n = 20_000  # htslib's BGZF writer fails without an errno: the free space tells it was the disk
    with pytest.raises(OSError, match=r"no space left on the device while writing .*imputed\.vcf\.gz"):
        write_vcf(small_fs / "imputed.vcf.gz", contig="1", positions=np.arange(1, n + 1), ref=["A"] * n,
                  alt=["C"] * n, samples=[f"s{i}" for i in range(50)],
                  haplotypes=rng.integers(0, 2, (n, 50, 2)).astype(np.int8),
                  dosages=rng.random((n, 50)).astype(np.float32))
    with pytest.raises(OSError, match=r"while writing .*model"):
        with atomic_dir(small_fs / "model") as stage:
            (stage / "weights").write_bytes(rng.bytes(3_000_000))
    assert list(small_fs.iterdir()) == []  # no partial artefact, no temporary


def test_a_scratch_folder_goes_when_its_step_ends_and_a_killed_steps_goes_at_the_next_write(tmp_path):
    import subprocess
    import sys

    from omicslm.io.atomic import scratch_dir

    out = tmp_path / "imputed.vcf.gz"
    with pytest.raises(RuntimeError):
        with scratch_dir(out) as tmp:
            assert tmp.is_absolute() and tmp.parent == tmp_path.resolve() and not any(tmp.iterdir())
            (tmp / "part").write_text("x")
            raise RuntimeError("the tool failed")
    assert not any(tmp_path.iterdir())
    # a SIGKILL runs no cleanup: the killed process's folder is removed by the next step writing that target
    code = ("import os, sys; from omicslm.io.atomic import scratch_dir\n"
            "cm = scratch_dir(sys.argv[1]); tmp = cm.__enter__(); (tmp / 'part').write_text('x'); os._exit(0)")
    subprocess.run([sys.executable, "-c", code, str(out)], check=True)
    left = list(tmp_path.iterdir())
    assert len(left) == 1 and left[0].name.startswith(".imputed.vcf.gz.tmp") and left[0].name.endswith(".scratch")
    with atomic_open(out) as fh:
        fh.write("x")
    assert [p.name for p in tmp_path.iterdir()] == ["imputed.vcf.gz"]
