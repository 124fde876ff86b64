from pathlib import Path

import jsonschema
import pytest
import yaml

from omicslm.config import load_config

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("extra", [[], ["config/1kg_chr20.yaml"], ["config/full.yaml"], ["config/crispron.yaml"],
                                   ["config/crispron.yaml", "config/crispron_cpu.yaml"], ["config/scale.yaml"],
                                   ["config/1kg_chr20_targets.yaml"], ["config/scrna_cpu.yaml"]])
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


@pytest.mark.parametrize("content, problem", [
    (None, "config file not found"),
    ("- a\n- b\n", "must be a mapping of keys"),
    ("impute: {a: [1,\n", "not valid YAML at line 2, column 1"),
    (b"\xff\xfe bad", "not UTF-8 text"),
])
def test_a_bad_config_file_is_named_with_its_problem(tmp_path, content, problem):
    from omicslm.errors import InputError

    path = tmp_path / "mine.yaml"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    with pytest.raises(InputError, match=problem) as info:
        load_config(ROOT / "config.yaml", path)
    assert str(path) in str(info.value)


def test_check_config_answers_bad_input_in_one_line(tmp_path, capsys):
    from omicslm.cli import main

    typo = tmp_path / "typo.yaml"
    typo.write_text(yaml.safe_dump({"impute": {"ingest": {"min_mafx": 0.1}}}))
    assert main(["check-config", str(ROOT / "config.yaml"), str(typo)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("omicslm check-config: error: config impute.ingest:") and "min_mafx" in err
    assert "\n" not in err and "Traceback" not in err
    assert main(["check-config", str(tmp_path / "absent.yaml")]) == 2
    assert "absent.yaml: config file not found" in capsys.readouterr().err
    bom = tmp_path / "bom.yaml"  # a UTF-8 byte-order mark (Windows editors) is not part of the first key
    bom.write_bytes(b"\xef\xbb\xbf" + yaml.safe_dump({"impute": {"ingest": {"min_maf": 0.2}}}).encode())
    assert load_config(ROOT / "config.yaml", bom)["impute"]["ingest"]["min_maf"] == 0.2


def test_missing_paths_names_each_absent_file_per_chromosome(tmp_path, monkeypatch):
    from omicslm.config import missing_paths

    monkeypatch.chdir(tmp_path)
    (tmp_path / "ref.chr1.vcf.gz").write_text("")
    (tmp_path / "targets.vcf.gz").write_text("")
    cfg = load_config(ROOT / "config.yaml", overrides={"impute": {
        "targets": {"source": "files", "vcf": "targets.vcf.gz", "chromosomes": ["chr1", "chr2"]},
        "reference": {"vcf": "ref.{chrom}.vcf.gz", "panel": "pops.txt"}}})
    assert missing_paths(cfg) == ["impute.reference.vcf: ref.chr2.vcf.gz", "impute.reference.panel: pops.txt"]
    assert missing_paths(load_config(ROOT / "config.yaml")) == []  # the default fetches or simulates its data
