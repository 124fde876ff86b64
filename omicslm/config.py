"""Load and validate the workflow configuration outside Snakemake (tests, CLI, notebooks)."""

from __future__ import annotations

import copy
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

    Defaults of optional keys are filled in from the schema, as Snakemake's
    ``validate(config, schema, set_default=True)`` does in the Snakefile. Raises
    ``jsonschema.ValidationError`` whose message names the offending key.
    """
    config: dict = {}
    for p in paths:
        with open(p) as fh:
            config = _merge(config, yaml.safe_load(fh) or {})
    if overrides:
        config = _merge(config, overrides)
    with open(schema) as fh:
        schema = yaml.safe_load(fh)
    validator = _with_defaults(jsonschema.validators.validator_for(schema))(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(config))
    if error is not None:
        raise error
    return config


def _with_defaults(validator_class):
    """A validator class that also sets each absent property with a ``default`` (jsonschema's FAQ recipe)."""
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, subschema in properties.items():
                if "default" in subschema:
                    instance.setdefault(name, copy.deepcopy(subschema["default"]))
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})
