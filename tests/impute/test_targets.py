"""Target-mode helpers of omicslm.impute.targets on small hand-built VCFs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from omicslm.errors import InputError
from omicslm.impute.targets import read_panel_sites, scored_sites
from omicslm.io.vcf import write_vcf

POS = np.array([100, 200, 200, 300, 400])
REF = ["A", "C", "C", "G", "T"]
ALT = ["G", "T", "CTT", "GA", "C"]  # 200: a SNP and an indel share the position; 300: an indel


@pytest.fixture()
def panel(tmp_path):
    hap = np.zeros((len(POS), 4, 2), dtype=np.int8)
    hap[:, 0, 0] = 1
    hap[4, :, :] = 1  # ALT frequency 1 at 400
    path = tmp_path / "panel.vcf.gz"
    write_vcf(path, contig="20", positions=POS, ref=REF, alt=ALT, samples=list("ABCD"), haplotypes=hap)
    return path


def test_panel_sites_with_and_without_indels(panel):
    every = read_panel_sites(panel, "chr20")  # contig names harmonised
    assert list(every["alt"]) == ALT and np.allclose(every["af"], [1 / 8] * 4 + [1.0])
    snps = read_panel_sites(panel, "20", snps_only=True)
    assert list(snps["pos"]) == [100, 200, 400] and list(snps["alt"]) == ["G", "T", "C"]
    with pytest.raises(InputError, match="no biallelic sites on contig '21'"):
        read_panel_sites(panel, "21")


def test_scored_sites_leave_out_typed_incomplete_and_shared_positions(panel):
    sites = read_panel_sites(panel, "20")
    complete = np.array([True, True, True, True, False])
    assert list(scored_sites(sites, {100}, complete)) == [False, False, False, True, False]
    snps = read_panel_sites(panel, "20", snps_only=True)
    # without the indel, 200 is alone at its position and is scored
    assert list(scored_sites(snps, set(), np.ones(len(snps), bool))) == [True, True, True]
    assert isinstance(sites, pd.DataFrame)
