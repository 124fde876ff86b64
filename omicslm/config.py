"""Load and validate the workflow configuration outside Snakemake (tests, CLI, notebooks)."""

from __future__ import annotations

import os
from pathlib import Path

import jsonschema
import yaml

SCHEMA = Path(__file__).resolve().parent.parent / "workflow" / "schemas" / "config.schema.yaml"


def _merge(base: dict, override: dict) -> dict:
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def load_config(*paths: str | os.PathLike, overrides: dict | None = None, schema=SCHEMA) -> dict:
    """Merge YAML files left to right (as Snakemake's ``--configfile`` does), validate, return.

    Raises ``jsonschema.ValidationError`` whose message names the offending key.
    """
    config: dict = {}
    for p in paths:
        with open(p) as fh:
            config = _merge(config, yaml.safe_load(fh) or {})
    if overrides:
        config = _merge(config, overrides)
    with open(schema) as fh:
        jsonschema.validate(config, yaml.safe_load(fh))
    return config
