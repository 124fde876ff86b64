from pathlib import Path

import jsonschema
import pytest
import yaml

from omicslm.config import load_config

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("extra", [[], ["config/1kg_chr20.yaml"], ["config/full.yaml"], ["config/crispron.yaml"],
                                   ["config/crispron.yaml", "config/crispron_cpu.yaml"], ["config/scale.yaml"],
                                   ["config/1kg_chr20_targets.yaml"]])
def test_shipped_configs_validate(extra):
    cfg = load_config(ROOT / "config.yaml", *[ROOT / e for e in extra])
    assert cfg["impute"]["evaluate"]["maf_bins"][0] == 0.0


def test_typo_is_rejected_naming_the_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"impute": {"ingest": {"min_mafx": 0.1}}}))
    with pytest.raises(jsonschema.ValidationError, match="min_mafx"):
        load_config(ROOT / "config.yaml", bad)


def test_vcf_source_requires_paths():
    with pytest.raises(jsonschema.ValidationError, match="vcf"):
        load_config(ROOT / "config.yaml", overrides={"impute": {"data": {"source": "vcf"}}})


def test_crispr_stack_needs_members():
    with pytest.raises(jsonschema.ValidationError, match="members"):
        load_config(ROOT / "config.yaml", overrides={"crispr": {"models": {"methods": {"blend": {"kind": "stack"}}}}})


def test_every_default_key_is_commented():
    # "every key commented": each line of config.yaml that sets a scalar carries a comment
    # (list/dict continuation lines excepted).
    previous = ""
    for n, line in enumerate((ROOT / "config.yaml").read_text().splitlines(), 1):
        s = line.strip()
        if s and not s.startswith("#") and not s.endswith(":"):
            assert "#" in s or previous.startswith("#"), f"config.yaml line {n} has no comment: {line!r}"
        previous = s
