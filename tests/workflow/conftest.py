import os
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared" / "data"
SNAKEMAKE = Path(sys.executable).parent / "snakemake"
NO_SLURM_BIN = Path(__file__).resolve().parent / "no_slurm_bin"


def snakemake_env(*, slurm: bool = False) -> dict[str, str]:
    """The environment of a Snakemake process started by these tests.

    Every time Snakemake starts, the SLURM executor plugin runs ``scontrol show config`` (for the
    MinJobAge its ``--help`` mentions). Where SLURM's client is installed but no controller runs (CI
    after ``make slurm-tools``, outside the SLURM test), that call waits 9 s for its timeout before it
    gives up, so it was most of the time of every dry run here. Unless ``slurm``, a ``scontrol`` that
    fails at once (``no_slurm_bin/``) comes first on PATH; the SLURM test passes ``slurm=True``.
    """
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    if not slurm:
        env["PATH"] = os.pathsep.join([str(NO_SLURM_BIN), env.get("PATH", "")])
    return env


def snakemake(workdir, *args, configs=(), check=True, timeout=1200, slurm=False):
    """Run the real Snakemake CLI on this repo's Snakefile in ``workdir`` (``slurm``: see :func:`snakemake_env`)."""
    cmd = [str(SNAKEMAKE), "--snakefile", str(ROOT / "Snakefile"), "--directory", str(workdir),
           "--configfile", str(ROOT / "config.yaml"), *map(str, configs), "--cores", "2", *args]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=snakemake_env(slurm=slurm))
    if check and res.returncode != 0:
        raise AssertionError(f"snakemake failed ({res.returncode}): {' '.join(cmd)}\n{res.stdout[-4000:]}\n{res.stderr[-6000:]}")
    return res


@contextmanager
def killed_outputs(workdir, paths, configs=()):
    """Outputs ``paths`` (relative to ``workdir``) as a job killed after it started leaves them, for a while.

    Snakemake removes a job's outputs when it starts; here they are also without Snakemake's record of
    them (as seen after a killed training job; ``--cleanup-metadata``), the case in which Snakemake does
    not go back for them by itself. The files are moved aside and put back on exit.
    """
    aside = workdir / "killed_aside"
    aside.mkdir(exist_ok=True)
    moved = []
    try:
        for rel in paths:
            src, dst = workdir / rel, aside / str(rel).replace("/", "__")
            src.rename(dst)
            moved.append((src, dst))
        snakemake(workdir, "--cleanup-metadata", *map(str, paths), configs=configs)
        yield
    finally:
        for src, dst in moved:
            dst.rename(src)


def write_config(path, data):
    path.write_text(yaml.safe_dump(data))
    return path


def planned_jobs(res) -> dict[str, int]:
    """Parse the 'Job stats' table of a dry run into {rule: count}."""
    out = res.stdout + res.stderr
    jobs = {}
    lines = out.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("Job stats:"):
            for row in lines[i + 3:]:
                parts = row.split()
                if len(parts) != 2 or not parts[1].isdigit() or parts[0] == "total":
                    break
                jobs[parts[0]] = int(parts[1])
            break
    return jobs
