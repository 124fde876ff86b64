"""``snakemake --report report.html``: one self-contained report with every branch's table and plots.

The branches are read from the Snakefile's ``rule all`` and their report files from the
``report(...)`` outputs in workflow/rules/*.smk (``results/<branch>_*``), so a new branch is checked
as soon as rule all includes it. Building every branch costs minutes, and the branch workflow tests
(which sort before this module) have just built them: a branch whose report files an earlier test
of this session left in its working directory is copied from there (with Snakemake's metadata);
only the others are built here, on a config cut to the least that still writes those files.
"""

import base64
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.workflow.conftest import ROOT, SNAKEMAKE, snakemake_env

pytestmark = pytest.mark.workflow


def branches() -> list[str]:
    """Branch names in rule all: rules.impute_all, rules.impute_model_all, rules.crispr_all, ..."""
    rule_all = (ROOT / "Snakefile").read_text().split("rule all:", 1)[1]
    return sorted({name.split("_")[0] for name in re.findall(r"rules\.(\w+?)_all\.input", rule_all)})


def report_files() -> dict[str, list[str]]:
    """Each branch's outputs marked report(...) in the rule files, by their results/<branch>_ or results/<branch>/ prefix."""
    marked = set()
    for smk in (ROOT / "workflow/rules").glob("*.smk"):
        marked |= set(re.findall(r'report\(\s*"(results/[^"]+)"', smk.read_text()))
    # results/<branch>_* or results/<branch>/*; an output with a wildcard (an external test set's scatter, an
    # embedded cell set's UMAP) exists only where config names one, and the default names none
    return {b: sorted(f for f in marked if "{" not in f and (f.startswith(f"results/{b}_") or f.startswith(f"results/{b}/")))
            for b in branches()}


def small_config() -> dict:
    """config.yaml with the model branches cut to one small model each (the report needs their files, not accuracy)."""
    cfg = yaml.safe_load((ROOT / "config.yaml").read_text())
    impute = cfg["impute"]
    impute["simulate"].update(length=300_000, populations={"YRI": 30, "CEU": 30, "CHB": 30})
    impute["evaluate"]["bootstrap"] = 20
    impute["model"].update(variants={"ragbert": {}}, pairs_per_epoch=128)
    impute["model"]["train"]["max_epochs"] = 2
    impute["targets"]["methods"] = ["minimac4"]  # the targets' r2 plot needs one method, not a second model
    cfg["crispr"]["models"]["methods"] = {"cnn": {"kind": "cnn"}}  # no DNABERT pretraining
    cfg["crispr"]["models"]["train"]["max_epochs"] = 2
    textlm = cfg["textlm"]
    textlm["models"] = {"gpt2": textlm["models"]["gpt2"]}
    textlm["train"].update(max_steps=6, eval_steps=3, logging_steps=1, save_steps=3)
    textlm["evaluate"]["max_blocks"] = textlm["max_eval_blocks"] = 4
    if "scrna" in cfg:  # first data set, first model, a few steps
        scrna = cfg["scrna"]
        scrna["datasets"] = dict(list(scrna["datasets"].items())[:1])
        scrna["models"] = dict(list(scrna["models"].items())[:1])
        scrna["steps_per_epoch"] = 5
        scrna["train"]["max_epochs"] = 2
    return cfg


def run_snakemake(workdir: Path, config: Path, *args: str) -> None:
    """Snakemake on this repo with ``config`` alone (not merged over config.yaml, which would keep every model)."""
    cmd = [str(SNAKEMAKE), "--snakefile", str(ROOT / "Snakefile"), "--directory", str(workdir),
           "--configfile", str(config), "--cores", "2", *args]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, env=snakemake_env())
    assert res.returncode == 0, f"snakemake failed: {' '.join(cmd)}\n{res.stdout[-4000:]}\n{res.stderr[-6000:]}"


def donor(base: Path, files: list[str], exclude: Path) -> Path | None:
    """The newest working directory of an earlier test in this session that holds all of ``files``."""
    dirs = [d for d in base.iterdir() if d.is_dir() and d != exclude]
    for d in sorted(dirs, key=lambda d: d.stat().st_mtime, reverse=True):
        if all((d / f).is_file() for f in files):
            return d
    return None


def embedded(html: str, name: str):
    """A JSON object the report embeds as ``<script id="name"> var name = {...}; </script>``."""
    m = re.search(rf'<script id="{name}">\s*var {name} = (.*?);?\s*</script>', html, re.S)
    assert m, f"no {name} in the report"
    return json.loads(m[1])


def test_report_holds_every_branch_table_and_plots(tmp_path_factory):
    work = tmp_path_factory.mktemp("report")
    config = work / "small.yaml"
    config.write_text(yaml.safe_dump(small_config()))
    files = report_files()
    for branch, paths in files.items():
        assert any(p.endswith(".tsv") for p in paths) and any(p.endswith(".png") for p in paths), \
            f"branch {branch} marks no table or no plot for the report: {paths}"

    to_build = []
    for branch, paths in files.items():
        src = donor(tmp_path_factory.getbasetemp(), paths, exclude=work)
        if src is None:
            to_build += paths
            continue
        print(f"{branch}: report files from {src}")
        for p in paths:
            (work / p).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src / p, work / p)
        if (src / ".snakemake/metadata").is_dir():  # runtimes and provenance for the report
            shutil.copytree(src / ".snakemake/metadata", work / ".snakemake/metadata", dirs_exist_ok=True)
    if to_build:
        print(f"built here: {to_build}")
        run_snakemake(work, config, *to_build)
    run_snakemake(work, config, "--report", str(work / "report.html"))

    html = (work / "report.html").read_text()
    results, categories = embedded(html, "results"), embedded(html, "categories")
    category_of = {f: c for c, subs in categories.items() for fs in subs.values() for f in fs}
    for branch, paths in files.items():
        for p in paths:
            assert p in results, f"{p} ({branch}) is not in the report"
            header, data = results[p]["data_uri"].split(";base64,", 1)
            mime = {".png": "image/png", ".tsv": "text/tab-separated-values", ".txt": "text/plain"}[Path(p).suffix]
            assert header.startswith(f"data:{mime}"), (p, header)
            assert base64.b64decode(data) == (work / p).read_bytes(), f"{p}: embedded bytes differ from the file"
        assert len({category_of[p] for p in paths}) == 1, f"{branch}'s files are split over categories"
    assert len({category_of[paths[0]] for paths in files.values()}) == len(files), categories
    # self-contained: nothing is loaded from the network when the report is opened
    assert not re.search(r'<(?:script|link|img)[^>]*\s(?:src|href)="https?:', html)
