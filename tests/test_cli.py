import subprocess
import sys
from pathlib import Path

import pytest

from omicslm.cli import build_parser, main

ROOT = Path(__file__).resolve().parents[1]


def test_help_explains_every_subcommand():
    res = subprocess.run([sys.executable, "-m", "omicslm.cli", "--help"], capture_output=True, text=True, check=True)
    for cmd in ("check-config", "simulate", "vcf-to-h5", "evaluate"):
        assert cmd in res.stdout
    assert "snakemake" in res.stdout


def test_check_config_accepts_shipped_and_names_bad_key(tmp_path, capsys):
    assert main(["check-config", str(ROOT / "config.yaml")]) == 0
    assert "valid" in capsys.readouterr().out
    bad = tmp_path / "bad.yaml"
    bad.write_text("impute:\n  split:\n    seeed: 1\n")
    assert main(["check-config", str(ROOT / "config.yaml"), str(bad)]) == 2  # one line, no traceback
    err = capsys.readouterr().err
    assert "config impute.split" in err and "seeed" in err


def test_subcommand_is_required():
    with pytest.raises(SystemExit):
        build_parser().parse_args([])
