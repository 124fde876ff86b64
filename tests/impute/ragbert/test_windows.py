"""Tests for omicslm.impute.ragbert.windows.write_windows: tiling a panel's sites into windows."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest

from omicslm.impute import layout
from omicslm.impute.ragbert.windows import write_windows


def make_sites_h5(path: Path, n: int) -> Path:
    with h5py.File(path, "w") as f:
        f.attrs["format_version"] = layout.FORMAT_VERSION
        f["variants/POS"] = np.arange(1, n + 1, dtype=np.int64) * 10
    return path


@pytest.mark.parametrize(
    "n, sites, overlap, starts",
    [
        (10, 4, 1, [0, 3, 6]),  # step 3 ends exactly at the last site
        (11, 4, 1, [0, 3, 6, 7]),  # last window moved back to end at site 11
        (10, 4, 2, [0, 2, 4, 6]),
        (10, 4, 0, [0, 4, 6]),
        (3, 4, 1, [0]),  # fewer sites than a window: one window with all
        (4, 4, 3, [0]),
    ],
)
def test_write_windows(tmp_path, n, sites, overlap, starts):
    h5 = make_sites_h5(tmp_path / "p.h5", n)
    df = write_windows(h5, tmp_path / "w.tsv", sites=sites, overlap=overlap)
    assert df["start_idx"].tolist() == starts
    assert df["window"].tolist() == list(range(len(starts)))
    assert (df["end_idx"] - df["start_idx"] == df["n_sites"]).all()
    assert (df["n_sites"] == min(n, sites)).all()
    covered = np.zeros(n, dtype=bool)
    for s, e in zip(df["start_idx"], df["end_idx"]):
        covered[s:e] = True
    assert covered.all() and df["end_idx"].iloc[-1] == n
    # consecutive windows share at least `overlap` sites (the moved last one may share more)
    shared = df["end_idx"].to_numpy()[:-1] - df["start_idx"].to_numpy()[1:]
    assert (shared >= overlap).all()
    if len(df) > 2:
        assert (shared[:-1] == overlap).all()
    assert df["start_pos"].tolist() == [10 * (s + 1) for s in starts]
    assert df["end_pos"].tolist() == [10 * e for e in df["end_idx"]]
    back = pd.read_csv(tmp_path / "w.tsv", sep="\t")
    assert list(back.columns) == ["window", "start_idx", "end_idx", "start_pos", "end_pos", "n_sites"]
    pd.testing.assert_frame_equal(back, df, check_dtype=False)


@pytest.mark.parametrize("sites, overlap", [(4, 4), (4, 5), (4, -1), (0, 0)])
def test_write_windows_bad_args(tmp_path, sites, overlap):
    h5 = make_sites_h5(tmp_path / "p.h5", 10)
    with pytest.raises(ValueError, match="overlap"):
        write_windows(h5, tmp_path / "w.tsv", sites=sites, overlap=overlap)
    assert not (tmp_path / "w.tsv").exists()
