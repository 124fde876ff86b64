"""The conda environment for --sdm conda pins the same versions as pyproject.toml."""

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_conda_env_pins_match_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    env = yaml.safe_load((ROOT / "envs/impute.yaml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert sorted(project) == sorted(pip)
    assert all(re.fullmatch(r"[A-Za-z0-9_.-]+==[0-9][0-9.]*", p) for p in project), "every dependency pinned with =="
