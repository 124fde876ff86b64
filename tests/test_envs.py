"""The conda environments for --sdm conda pin the same versions as the lock file."""

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def _lock():
    pins = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        if line and not line.startswith("#"):
            name, version = line.split("==")
            pins[name.lower().replace("_", "-")] = version
    return pins


@pytest.mark.parametrize("env", sorted((ROOT / "envs").glob("*.yaml")), ids=lambda p: p.name)
def test_conda_env_pins_match_the_lock(env):
    lock = _lock()
    spec = yaml.safe_load(env.read_text())
    pip = next(d["pip"] for d in spec["dependencies"] if isinstance(d, dict))
    for pin in pip:
        m = re.fullmatch(r"([A-Za-z0-9_.-]+)==([0-9][0-9.]*)", pin)
        assert m, f"{env.name}: {pin!r} is not pinned with =="
        assert lock.get(m[1].lower().replace("_", "-")) == m[2], f"{env.name}: {pin} differs from requirements.lock"


def test_pyproject_dependencies_are_pinned_as_in_the_lock():
    import tomllib

    lock = _lock()
    for dep in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]:
        name, version = dep.split("==")
        assert lock.get(name.lower().replace("_", "-")) == version, dep
