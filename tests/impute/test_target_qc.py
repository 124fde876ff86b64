"""Tests for omicslm.impute.target_qc: allele matching, call rates, outputs and bad input.

The panel names the chromosome ``20``, the targets ``chr20``. Every error is an InputError
naming the target file and leaves nothing in the output folder.
"""

from __future__ import annotations

import json
import logging
import subprocess
from pathlib import Path

import pandas as pd
import pysam
import pytest

from omicslm.errors import InputError
from omicslm.impute.target_qc import qc_targets

HEADER = "##fileformat=VCFv4.2\n{contigs}##FORMAT=<ID=GT,Number=1,Type=String,Description=\"Genotype\">\n"
PANEL_SAMPLES = [f"P{i:02d}" for i in range(1, 11)]
TARGET_SAMPLES = [f"T{i:02d}" for i in range(1, 11)]
OPTIONS = dict(min_site_call_rate=0.85, min_sample_call_rate=0.8, ambiguous_max_maf=0.4, ambiguous_max_af_diff=0.1)

# panel: pos, ref, alt, number of ALT haplotypes of 20
PANEL = [(100, "A", "G", 5), (150, "C", "T", 4), (200, "C", "T", 6), (300, "A", "C", 7), (400, "A", "G", 8),
         (500, "A", "T", 2), (550, "A", "T", 2), (600, "C", "G", 9), (700, "AT", "A", 4), (800, "A", "C", 3),
         (900, "G", "T", 3), (1000, "C", "A", 5), *((p, "G", "A", 5) for p in (1100, 1200, 1300, 1400)),
         (1500, "T", "C", 1)]


def gts(*head, rest="0/0", n=10):
    """Genotypes of the 10 target samples: ``head`` for the first ones, ``rest`` for the others."""
    return [*head, *[rest] * (n - len(head))]


# target: pos, ref, alt, genotypes of T01..T10, expected action
TARGET = [
    (100, "A", "G", gts(".|.", "0|1", "1|0", rest="0|0"), "match"),  # T01 missing; phased calls
    (200, "T", "C", gts("0/0", "0/1", "1/1", rest="0/1"), "swapped"),  # panel C/T
    (300, "T", "G", gts("0/1", "1/1"), "flipped"),  # panel A/C on the other strand
    (400, "C", "T", gts("0/0", "0/1"), "flipped_swapped"),  # complement G/A = panel A/G swapped
    (500, "A", "T", gts("0/1", "0/1"), "match"),  # A/T, target ALT freq 0.1 = panel's
    (550, "A", "T", gts("0/1", "0/1", rest="1/1"), "swapped"),  # A/T, target ALT freq 0.9 = 1 - panel's
    (600, "C", "G", gts("0/1"), "ambiguous"),  # C/G with panel MAF 0.45: not settled
    (700, "A", "AT", gts("0/1"), "swapped"),  # indel, panel AT/A
    (800, "A", "G", gts("0/1"), "absent"),  # panel A/C
    (850, "G", "C", gts("0/1"), "absent"),  # no panel site
    (900, "G", "T,C", gts("0/1", "0/2"), "multiallelic"),
    (1000, "C", "A", gts("./.", "./.", "./.", *["0/1"] * 6, "./."), "low_call_rate"),  # 6 of 9 kept samples
    *((p, "G", "A", gts("0/1", rest="0/0", n=9) + ["./."], "match") for p in (1100, 1200, 1300, 1400)),
]
# T10 is missing at 1000-1400: 7 of its 12 matched sites called, below 0.8


def write_vcf_text(path: Path, records, samples, chrom, contigs=None) -> Path:
    """Write ``records`` (pos, ref, alt, genotypes) as plain VCF text."""
    contigs = "".join(f"##contig=<ID={c}>\n" for c in (contigs or [chrom]))
    lines = [HEADER.format(contigs=contigs) + "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\t"
             + "\t".join(samples)]
    for pos, ref, alt, genotypes, *_ in records:
        lines.append("\t".join([chrom, str(pos), f"rs{pos}", ref, alt, ".", "PASS", ".", "GT", *genotypes]))
    path.write_text("\n".join(lines) + "\n")
    return path


def bgzip(plain: Path, index: str | None = "tbi") -> Path:
    gz = Path(f"{plain}.gz")
    pysam.tabix_compress(str(plain), str(gz), force=True)
    plain.unlink()
    if index:
        pysam.tabix_index(str(gz), preset="vcf", force=True, csi=index == "csi")
    return gz


def make_panel(tmp_path: Path, samples=PANEL_SAMPLES) -> Path:
    records = []
    for pos, ref, alt, k in PANEL:
        haps = ["1"] * k + ["0"] * (20 - k)
        records.append((pos, ref, alt, [f"{haps[2 * j]}|{haps[2 * j + 1]}" for j in range(10)]))
    return bgzip(write_vcf_text(tmp_path / "panel.vcf", records, samples, "20"))


def make_target(tmp_path: Path, records=TARGET, samples=TARGET_SAMPLES, chrom="chr20", index="tbi") -> Path:
    return bgzip(write_vcf_text(tmp_path / "target.vcf", records, samples, chrom), index)


def run_qc(tmp_path: Path, target: Path, panel: Path | None = None, **kw) -> dict:
    out = tmp_path / "out"
    return qc_targets(target, panel or make_panel(tmp_path), out / "qc.vcf.gz", out / "qc.tsv", chrom="20",
                      **{**OPTIONS, **kw})


def query(vcf: Path, fmt: str) -> list[str]:
    proc = subprocess.run(["bcftools", "query", "-f", fmt, str(vcf)], capture_output=True, text=True, check=True)
    return proc.stdout.splitlines()


# --------------------------------------------------------------------------- QC decisions and outputs


@pytest.mark.parametrize("index", ["tbi", "csi"])
def test_every_reason_counted(tmp_path, index, caplog):
    caplog.set_level(logging.INFO, logger="omicslm.impute.target_qc")
    summary = run_qc(tmp_path, make_target(tmp_path, index=index))
    assert summary == {
        "chrom": "20", "n_records": 16, "kept": 11,
        "dropped": {"multiallelic": 1, "absent": 2, "ambiguous": 1, "low_call_rate": 1},
        "recoded": {"swapped": 3, "flipped": 1, "flipped_swapped": 1},
        "samples_kept": 9, "samples_dropped": ["T10"], "phased": False,
    }
    out = tmp_path / "out"
    assert json.loads((out / "qc.summary.json").read_text()) == summary
    table = pd.read_csv(out / "qc.tsv", sep="\t", keep_default_na=False)
    assert list(table.columns) == ["pos", "target_ref", "target_alt", "panel_ref", "panel_alt", "action", "call_rate"]
    assert table["action"].tolist() == [rec[4] for rec in TARGET]
    row = table.set_index("pos")
    assert row.loc[300, ["target_ref", "target_alt", "panel_ref", "panel_alt"]].tolist() == ["T", "G", "A", "C"]
    assert row.loc[900, "target_alt"] == "T,C" and row.loc[850, "panel_ref"] == "."
    assert row.loc[1000, "call_rate"] == pytest.approx(6 / 9, abs=1e-4)
    assert row.loc[100, "call_rate"] == pytest.approx(8 / 9, abs=1e-4)
    assert row.loc[1100, "call_rate"] == 1.0  # over the kept samples: T10's gap does not count
    for reason in ("multiallelic", "absent", "ambiguous", "low_call_rate", "swapped", "flipped", "flipped_swapped"):
        assert any(f"{reason} " in m and "records" in m for m in caplog.messages), reason
    assert any("T10" in m for m in caplog.messages)


def test_output_vcf_in_panel_orientation(tmp_path):
    run_qc(tmp_path, make_target(tmp_path))
    vcf = tmp_path / "out" / "qc.vcf.gz"
    assert Path(f"{vcf}.tbi").is_file()
    body = subprocess.run(["bcftools", "view", "-H", str(vcf)], capture_output=True, text=True, check=True).stdout
    assert len(body.splitlines()) == 11
    header = subprocess.run(["bcftools", "view", "-h", str(vcf)], capture_output=True, text=True, check=True).stdout
    assert "##contig=<ID=20>" in header
    assert header.splitlines()[-1].split("\t")[9:] == TARGET_SAMPLES[:9]
    rows = {int(line.split()[1]): line.split() for line in query(vcf, "%CHROM %POS %REF %ALT [%GT ]\n")}
    assert sorted(rows) == [100, 200, 300, 400, 500, 550, 700, 1100, 1200, 1300, 1400]
    assert {r[0] for r in rows.values()} == {"20"}
    # 100: match, phased calls keep '|', the missing call stays missing
    assert rows[100][2:4] == ["A", "G"] and rows[100][4:8] == [".|.", "0|1", "1|0", "0|0"]
    # 200 swapped: target T/C -> panel C/T, T01 hom T (0/0) is now hom ALT
    assert rows[200][2:4] == ["C", "T"] and rows[200][4:8] == ["1/1", "1/0", "0/0", "1/0"]
    # 300 flipped: panel alleles, genotypes unchanged
    assert rows[300][2:4] == ["A", "C"] and rows[300][4:7] == ["0/1", "1/1", "0/0"]
    # 400 flipped and swapped: recoded
    assert rows[400][2:4] == ["A", "G"] and rows[400][4:7] == ["1/1", "1/0", "1/1"]
    # 550 ambiguous settled as swapped, 700 swapped indel
    assert rows[550][2:4] == ["A", "T"] and rows[550][4:7] == ["1/0", "1/0", "0/0"]
    assert rows[700][2:4] == ["AT", "A"] and rows[700][4:6] == ["1/0", "1/1"]
    # the ALT dosage of a swapped site is in the panel's orientation
    ds = [line.split() for line in query(vcf, "%POS [%GT ]\n")]
    assert ds[1][0] == "200" and sum(g.count("1") for g in ds[1][1:]) == 2 + 1 + 0 + 1 * 6


def test_phased_summary_when_complete(tmp_path):
    records = [(p, "G", "A", gts("0|1", rest="1|0")) for p in (1100, 1200, 1300, 1400)]
    summary = run_qc(tmp_path, make_target(tmp_path, records))
    assert summary["phased"] is True and summary["kept"] == 4 and summary["samples_dropped"] == []


# --------------------------------------------------------------------------- bad input


def expect_error(tmp_path: Path, target: Path, match: str, panel: Path | None = None, **kw) -> InputError:
    with pytest.raises(InputError, match=match) as info:
        run_qc(tmp_path, target, panel, **kw)
    assert info.value.path == str(target)
    out = tmp_path / "out"
    assert not out.exists() or list(out.iterdir()) == []
    return info.value


def test_wrong_build(tmp_path):
    # positions shifted as a liftover would: only 4 of 10 records still meet a panel site
    records = [(p + 7, "A", "G", gts("0/1")) for p in range(100, 700, 100)]
    records += [(p, "G", "A", gts("0/1")) for p in (1100, 1200, 1300, 1400)]
    e = expect_error(tmp_path, make_target(tmp_path, sorted(records)), r"only 40\.0% of the target sites")
    assert "wrong genome build" in str(e) and "absent 6" in str(e)


def test_no_shared_contig(tmp_path):
    target = make_target(tmp_path, TARGET[:3], chrom="chr21")
    e = expect_error(tmp_path, target, "no shared contig")
    assert "chr21" in str(e) and "chromosome 20" in str(e)


def test_target_sample_in_panel(tmp_path):
    samples = TARGET_SAMPLES[:9] + ["P04"]
    e = expect_error(tmp_path, make_target(tmp_path, samples=samples), "also samples of the panel")
    assert "P04" in str(e)


def test_unindexed_target(tmp_path):
    target = make_target(tmp_path, index=None)
    expect_error(tmp_path, target, r"has no index .*bcftools index -t")


def test_plain_text_target(tmp_path):
    target = write_vcf_text(tmp_path / "target.vcf", TARGET, TARGET_SAMPLES, "chr20")
    expect_error(tmp_path, target, "not bgzip-compressed")


def test_unsorted_target(tmp_path):
    # an index made before the records were reordered: tabix refuses to index unsorted records
    target = make_target(tmp_path, TARGET)
    reordered = [TARGET[0], TARGET[2], TARGET[1], *TARGET[3:]]  # 100, 300, 200: same bytes, same blocks
    pysam.tabix_compress(str(write_vcf_text(tmp_path / "unsorted.vcf", reordered, TARGET_SAMPLES, "chr20")),
                         str(target), force=True)
    e = expect_error(tmp_path, target, "not sorted")
    assert e.record == "chr20:200"


def test_all_samples_below_call_rate(tmp_path):
    records = [(p, "G", "A", gts(rest="./.") if p % 200 else gts("0/1")) for p in range(1100, 1500, 100)]
    records = [(100, "A", "G", gts(rest="./.")), (200, "T", "C", gts("0/1", rest="./.")), *records]
    e = expect_error(tmp_path, make_target(tmp_path, records), "no sample of 10 has a call rate of at least 0.8")
    assert "chr20" in str(e)


def test_duplicate_target_sample_names(tmp_path):
    samples = TARGET_SAMPLES[:9] + ["T03"]
    e = expect_error(tmp_path, make_target(tmp_path, samples=samples), "duplicate sample name")
    assert "T03" in str(e) and "#CHROM" in str(e)
