"""Load and validate the workflow configuration outside Snakemake (tests, CLI, notebooks)."""

from __future__ import annotations

import copy
import os
from pathlib import Path

import jsonschema
import yaml

from omicslm.errors import InputError

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
        config = _merge(config, read_config_file(p))
    if overrides:
        config = _merge(config, overrides)
    with open(schema) as fh:
        schema = yaml.safe_load(fh)
    validator = _with_defaults(jsonschema.validators.validator_for(schema))(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(config))
    if error is not None:
        raise error
    return config


def read_config_file(path: str | os.PathLike) -> dict:
    """One YAML config file as a mapping (empty file: {}); InputError naming the file when it is missing, is not
    YAML (with the line and column) or is not a mapping of keys."""
    try:
        with open(path, encoding="utf-8-sig") as fh:
            data = yaml.safe_load(fh)
    except FileNotFoundError:
        raise InputError(path, "config file not found") from None
    except IsADirectoryError:
        raise InputError(path, "config file is a directory") from None
    except UnicodeDecodeError as exc:
        raise InputError(path, f"config file is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise InputError(path, f"config file is not valid YAML{where}: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InputError(path, f"config file must be a mapping of keys (e.g. 'impute: ...'), not a {type(data).__name__}")
    return data


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


def missing_paths(config: dict) -> list[str]:
    """The data paths in ``config`` that do not exist (relative to the working directory), each as
    ``"<config key>: <path>"``: checked before any job runs, so a typo is named up front instead of by the
    first job that reads the file. Patterns with ``{chrom}`` are checked for every configured chromosome."""
    import glob

    missing = []

    def need(key, path, chroms=None):
        if not path:
            return
        for p in ([path.format(chrom=c) for c in chroms or []] if "{chrom}" in path else [path]):
            if not os.path.exists(p):
                missing.append(f"{key}: {p}")

    imp = config.get("impute", {})
    if imp.get("data", {}).get("source") == "vcf":
        for k in ("vcf", "panel", "genetic_map"):
            need(f"impute.data.{k}", imp["data"].get(k))
    need("impute.array.manifest", imp.get("array", {}).get("manifest"))
    targets = imp.get("targets", {})
    if targets.get("source") == "files":
        chroms = targets.get("chromosomes") or []
        for k in ("vcf", "truth"):
            need(f"impute.targets.{k}", targets.get(k), chroms)
        ref = imp.get("reference", {})
        for k in ("vcf", "panel", "genetic_map"):
            need(f"impute.reference.{k}", ref.get(k), chroms)
    crispr = config.get("crispr", {}).get("data", {})
    if crispr.get("source") in ("workbook", "table"):
        need(f"crispr.data.{crispr['source']}.path", crispr.get(crispr["source"], {}).get("path"))
    text = config.get("textlm", {})
    corpus = text.get("corpus", {})
    if corpus.get("source") == "files":
        for pattern in corpus.get("files") or []:
            if not glob.glob(os.path.expanduser(pattern), recursive=True):
                missing.append(f"textlm.corpus.files: {pattern} (matches no file)")
    if corpus.get("source") == "dataset":
        need("textlm.corpus.dataset", corpus.get("dataset"))
    for name, patterns in (text.get("score") or {}).items():
        for pattern in patterns:
            if not glob.glob(os.path.expanduser(pattern), recursive=True):
                missing.append(f"textlm.score.{name}: {pattern} (matches no file)")
    if text.get("tokenizer", {}).get("source") == "local":
        need("textlm.tokenizer.path", text["tokenizer"].get("path"))
    return missing
