"""Peer imputation baselines: Beagle 5.4 and minimac4 (the allele-frequency floor: :mod:`omicslm.impute.af_floor`).

Every method gets the same inputs (the panel VCF and the target VCF written by
:func:`omicslm.io.vcf.write_vcf`) and must produce a bgzipped, tabix-indexed VCF
with ``GT`` and ``DS`` at every panel site for every target sample, so the
evaluation step can score all methods the same way.

The external tools are run with :mod:`subprocess`; the exact command line is
logged, a failure raises :class:`RuntimeError` carrying the tail of the tool's
output, and every output is produced in a temporary directory beside the final
path and renamed into place, so a failed or killed run leaves no artefact.
"""

from __future__ import annotations

import gzip
import logging
import os
import shlex
import subprocess
import time
import zlib
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pysam

from omicslm.errors import InputError
from omicslm.io import runtime
from omicslm.io.atomic import atomic_open, atomic_path, publish_with_index, scratch_dir

logger = logging.getLogger(__name__)

#: The one runtime.json writer (:mod:`omicslm.io.runtime`); the baseline steps' scripts import it from here.
write_runtime = runtime.write_runtime

#: Where Debian's ``beagle`` package puts the jar its ``/usr/bin/beagle`` wrapper runs;
#: calling java on it directly lets us pass the heap size (-Xmx), which the wrapper cannot.
BEAGLE_JAR = Path("/usr/share/beagle/beagle.jar")

#: Beagle's own default seed (``seed=-99999``); kept so that leaving ``seed`` unset
#: reproduces a plain ``beagle`` run.
BEAGLE_DEFAULT_SEED = -99999

#: FORMAT fields asked of minimac4: GT and DS are the contract, GP matches Beagle's gp=true.
MINIMAC4_FORMAT = ("GT", "DS", "GP")

#: Lines of tool output quoted in a RuntimeError: enough for the error and its context.
_STDERR_TAIL_LINES = 30


# --------------------------------------------------------------------------- helpers


def _tail(text: str, n: int = _STDERR_TAIL_LINES) -> str:
    return "\n".join(text.strip().splitlines()[-n:])


def run_tool(cmd: Sequence[str], *, tool: str, cwd: Path | None = None) -> float:
    """Run ``cmd``, log it, and return its wall-clock seconds; raise with its output tail on failure.

    stdout is captured along with stderr because Beagle prints its errors to stdout;
    every tool here writes its results to files, never to stdout.
    """
    cmd = [str(c) for c in cmd]
    logger.info("running %s: %s", tool, shlex.join(cmd))
    start = time.perf_counter()
    try:
        proc = subprocess.run(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=cwd,
            text=True,
        )
    except FileNotFoundError as exc:
        raise RuntimeError(
            f"{tool} is not installed ({exc.filename} not found); run scripts/install_system_tools.sh "
            "or use the workflow with --sdm conda"
        ) from exc
    seconds = time.perf_counter() - start
    output = "\n".join(s for s in (proc.stdout, proc.stderr) if s)
    if proc.returncode != 0:
        status = (f"was killed by signal {-proc.returncode}" if proc.returncode < 0
                  else f"exited with status {proc.returncode}")
        raise RuntimeError(
            f"{tool} failed: it {status}: {shlex.join(cmd)}\n"
            f"--- last lines of its output ---\n{_tail(output)}"
        )
    logger.info("%s finished in %.1f s", tool, seconds)
    if output.strip():
        logger.debug("%s output:\n%s", tool, _tail(output))
    return seconds


def index_and_move(tmp_vcf: Path, out_vcf: Path) -> None:
    """Tabix-index ``tmp_vcf`` and rename it, then its index, onto ``out_vcf``
    (:func:`~omicslm.io.atomic.publish_with_index`: an index is never newer than its VCF)."""
    pysam.tabix_index(str(tmp_vcf), preset="vcf", force=True)
    publish_with_index(tmp_vcf, out_vcf)


def _region_arg(region: tuple[str, int, int] | None) -> str | None:
    """``contig:start-end`` for a 1-based inclusive ``(contig, start, end)`` window, or None."""
    if region is None:
        return None
    try:
        contig, start, end = region
        start, end = int(start), int(end)
    except (TypeError, ValueError):
        raise ValueError(f"region must be (contig, start, end), got {region!r}") from None
    if not contig or start < 1 or end < start:
        raise ValueError(f"region {region!r} is not a 1-based inclusive window with start <= end")
    return f"{contig}:{start}-{end}"


def require_file(path: str | os.PathLike, what: str) -> Path:
    path = Path(path)
    if not path.is_file():
        raise InputError(path, f"{what} does not exist")
    return path


# --------------------------------------------------------------------------- inputs


def convert_genetic_map(in_map: str | os.PathLike, out_map: str | os.PathLike, *, contig: str) -> Path:
    """Convert a ``pos chr cM`` map (SHAPEIT4/Eagle style) to PLINK format for Beagle and minimac4.

    Parameters
    ----------
    in_map : path
        Whitespace-separated columns ``pos chr cM``, one chromosome, positions
        1-based and strictly increasing; gzip or plain; a header line (``pos chr cM``) is optional.
    out_map : path
        PLINK map ``chrom . cM pos``, written plain (gzip if the name ends in ``.gz``;
        note minimac4 reads plain maps only).
    contig : str
        The VCF contig name written in the ``chrom`` column, so the tools match the
        map to the VCF (e.g. a map saying ``20`` for a VCF saying ``chr20``).

    Returns
    -------
    Path of ``out_map``.

    Raises
    ------
    InputError
        A malformed line (wrong column count, non-numeric position or cM, position
        below 1 or not increasing, cM decreasing) or more than one chromosome; the message
        names the file and the line number.
    """
    in_map, out_map = Path(in_map), Path(out_map)
    try:
        return _convert_genetic_map(in_map, out_map, contig=contig)
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise InputError(in_map, f"genetic map is truncated or not valid gzip ({exc}); re-download or re-compress "
                                 "it") from None
    except UnicodeDecodeError as exc:
        raise InputError(in_map, f"genetic map is not text ({exc.reason} at byte {exc.start}): a 'pos chr cM' "
                                 "table, plain or gzip") from None


def _convert_genetic_map(in_map: Path, out_map: Path, *, contig: str) -> Path:
    with open(in_map, "rb") as probe:  # gzip by its magic bytes, whatever the name says
        opener = gzip.open if probe.read(2) == b"\x1f\x8b" else open
    out_opener = gzip.open if out_map.suffix == ".gz" else open
    n_written, prev_pos, prev_cm, chrom = 0, -1, -np.inf, None
    with atomic_path(out_map) as tmp, opener(in_map, "rt") as fin, out_opener(tmp, "wt") as fout:
        for lineno, line in enumerate(fin, start=1):
            fields = line.split()
            if not fields:
                continue
            if lineno == 1 and fields[0].lower() in ("pos", "position", "#pos"):
                continue  # optional header
            where = f"line {lineno}"
            if len(fields) != 3:
                raise InputError(in_map, f"expected 3 columns 'pos chr cM', found {len(fields)}", record=where)
            pos_s, chr_s, cm_s = fields
            try:
                pos = int(pos_s)
                cm = float(cm_s)
            except ValueError:
                raise InputError(in_map, f"position {pos_s!r} or cM {cm_s!r} is not a number", record=where) from None
            if chrom is None:
                chrom = chr_s
            elif chr_s != chrom:
                raise InputError(in_map, f"map holds several chromosomes ({chrom}, {chr_s}); give one", record=where)
            if pos < 1:
                # VCF positions are 1-based; minimac4 4.1.2 also aborts on a map record at 0
                raise InputError(in_map, f"position {pos} is below 1 (positions are 1-based)", record=where)
            if pos <= prev_pos:
                raise InputError(in_map, f"position {pos} is not after the previous {prev_pos}", record=where)
            if not np.isfinite(cm) or cm < prev_cm:
                raise InputError(in_map, f"cM {cm_s} is not finite or below the previous {prev_cm}", record=where)
            prev_pos, prev_cm = pos, cm
            # keep the cM text as given: reformatting floats would change the map for nothing
            fout.write(f"{contig}\t.\t{cm_s}\t{pos}\n")
            n_written += 1
        if n_written < 2:
            raise InputError(in_map, f"map has {n_written} records; at least 2 are needed to interpolate")
    logger.info("wrote %d map records for contig %s to %s", n_written, contig, out_map)
    return out_map


# --------------------------------------------------------------------------- Beagle


def _beagle_cmd(mem_gb: int) -> list[str]:
    """The command that starts Beagle: java on the Debian jar with ``-Xmx``, else the ``beagle`` wrapper."""
    if BEAGLE_JAR.is_file():
        return ["java", f"-Xmx{mem_gb}g", "-jar", str(BEAGLE_JAR)]
    return ["beagle"]


def run_beagle(
    ref_vcf: str | os.PathLike,
    target_vcf: str | os.PathLike,
    out_vcf: str | os.PathLike,
    *,
    genetic_map: str | os.PathLike | None = None,
    threads: int = 1,
    mem_gb: int = 2,
    ne: float | None = None,
    seed: int = BEAGLE_DEFAULT_SEED,
    log: str | os.PathLike | None = None,
    region: tuple[str, int, int] | None = None,
) -> float:
    """Impute ``target_vcf`` from the phased panel ``ref_vcf`` with Beagle 5.4.

    Parameters
    ----------
    ref_vcf : path
        Phased panel VCF (bgzipped), all panel sites.
    target_vcf : path
        Phased target VCF at the typed (array) sites.
    out_vcf : path
        Output ``.vcf.gz`` with GT, DS, GP at every panel site; ``out_vcf.tbi`` is written too.
    genetic_map : path, optional
        PLINK map (see :func:`convert_genetic_map`); without it Beagle assumes 1 cM = 1 Mb.
    threads : int
        Beagle ``nthreads``.
    mem_gb : int
        Java heap (-Xmx) in GiB; used when the Debian jar is found, else the
        ``beagle`` command runs with Java's default heap.
    ne : float, optional
        Effective population size (Beagle's default when None).
    seed : int
        Beagle's random seed.
    log : path, optional
        Where to copy Beagle's own ``.log`` file.
    region : (contig, start, end), optional
        Impute only this 1-based inclusive window (``chrom=contig:start-end``); None: everything.

    Returns
    -------
    float
        Wall-clock seconds Beagle ran.

    Raises
    ------
    RuntimeError
        Beagle failed or wrote no VCF; the message quotes its output.
    """
    region_arg = _region_arg(region)
    mode = ["impute=true", "gp=true", *([f"chrom={region_arg}"] if region_arg is not None else [])]
    return beagle_to_vcf(ref_vcf, target_vcf, out_vcf, mode, genetic_map=genetic_map, threads=threads, mem_gb=mem_gb,
                         seed=seed, ne=ne, tool="beagle", log=log)


def beagle_to_vcf(ref_vcf: str | os.PathLike, target_vcf: str | os.PathLike, out_vcf: str | os.PathLike,
                  mode: Sequence[str], *, genetic_map: str | os.PathLike | None, threads: int, mem_gb: int, seed: int,
                  ne: float | None, tool: str, log: str | os.PathLike | None = None,
                  check: Callable[[Path], None] | None = None) -> float:
    """Run Beagle 5.4 on ``target_vcf`` against ``ref_vcf`` in a temporary directory beside ``out_vcf``.

    ``mode`` holds the step's own ``key=value`` arguments (``impute=true gp=true``, ``impute=false``,
    ``chrom=...``). Beagle's VCF is checked (``check(path)`` may raise), indexed and renamed onto
    ``out_vcf``; its own log is copied to ``log`` when given. Returns Beagle's wall-clock seconds;
    raises ``RuntimeError`` quoting its output when it fails or writes no VCF.
    """
    args = [f"ref={Path(ref_vcf).resolve()}", f"gt={Path(target_vcf).resolve()}", f"nthreads={threads}",
            f"seed={seed}", *mode]
    if genetic_map is not None:
        args.append(f"map={Path(genetic_map).resolve()}")
    if ne is not None:
        args.append(f"ne={ne:g}")
    out_vcf = Path(out_vcf)
    with scratch_dir(out_vcf) as tmp:
        prefix = tmp / "beagle"
        seconds = run_tool([*_beagle_cmd(mem_gb), *args, f"out={prefix}"], tool=tool, cwd=tmp)
        result = Path(f"{prefix}.vcf.gz")
        if not result.is_file():
            beagle_log = Path(f"{prefix}.log")
            text = beagle_log.read_text() if beagle_log.is_file() else ""
            raise RuntimeError(f"{tool} exited 0 but wrote no {result.name}; its log ends:\n{_tail(text)}")
        if log is not None:
            with atomic_open(log) as fh:
                fh.write(Path(f"{prefix}.log").read_text())
        if check is not None:
            check(result)
        index_and_move(result, out_vcf)
    return seconds


# --------------------------------------------------------------------------- minimac4


def compress_reference_minimac4(ref_vcf: str | os.PathLike, out_msav: str | os.PathLike, *, threads: int = 1) -> float:
    """Compress a phased panel VCF into minimac4's ``.msav`` reference format.

    Runs ``minimac4 --compress-reference ref.vcf.gz -o out.msav``.

    Parameters
    ----------
    ref_vcf : path
        Phased panel VCF (bgzipped, indexed).
    out_msav : path
        Output ``.msav``.
    threads : int
        minimac4 ``--threads``.

    Returns
    -------
    float
        Wall-clock seconds minimac4 ran.
    """
    out_msav = Path(out_msav)
    with scratch_dir(out_msav) as tmp:
        result = tmp / "reference.msav"
        cmd = ["minimac4", "--compress-reference", "--threads", threads, "-o", result, Path(ref_vcf).resolve()]
        seconds = run_tool(cmd, tool="minimac4 --compress-reference")
        if not result.is_file() or result.stat().st_size == 0:
            raise RuntimeError(f"minimac4 --compress-reference wrote no {result.name} for {ref_vcf}")
        os.replace(result, out_msav)
    return seconds


def run_minimac4(
    ref_msav: str | os.PathLike,
    target_vcf: str | os.PathLike,
    out_vcf: str | os.PathLike,
    *,
    threads: int = 1,
    genetic_map: str | os.PathLike | None = None,
    region: tuple[str, int, int] | None = None,
) -> float:
    """Impute ``target_vcf`` from a compressed panel with minimac4 v4.1.2.

    minimac4 writes every reference-panel site by default (``-a`` would add sites
    found only in the target; we leave it off since target sites are a subset of
    the panel). Output FORMAT fields are ``GT:DS:GP`` (:data:`MINIMAC4_FORMAT`).

    Parameters
    ----------
    ref_msav : path
        Panel from :func:`compress_reference_minimac4`.
    target_vcf : path
        Phased, indexed target VCF at the typed sites.
    out_vcf : path
        Output ``.vcf.gz`` (``out_vcf.tbi`` is written too).
    threads : int
        minimac4 ``--threads``.
    genetic_map : path, optional
        A *plain-text* PLINK map (``chrom . cM pos``) such as
        :func:`convert_genetic_map` writes; minimac4 4.1.2 reads this "old" format
        with a plain stream, so a gzipped map is refused. Without a map minimac4
        estimates recombination from the reference panel itself.
    region : (contig, start, end), optional
        Impute and write only this 1-based inclusive window (``--region contig:start-end``;
        minimac4 still reads ``--overlap`` bp either side as HMM context); None imputes everything.

    Returns
    -------
    float
        Wall-clock seconds minimac4 ran.

    Raises
    ------
    InputError
        ``genetic_map`` is gzipped.
    RuntimeError
        minimac4 failed; the message quotes its stderr.
    """
    out_vcf = Path(out_vcf)
    region_arg = _region_arg(region)
    cmd = ["minimac4", "--threads", threads, "--format", ",".join(MINIMAC4_FORMAT), "--output-format", "vcf.gz"]
    if genetic_map is not None:
        genetic_map = require_file(genetic_map, "genetic map")
        with open(genetic_map, "rb") as fh:
            if fh.read(2) == b"\x1f\x8b":
                raise InputError(genetic_map, "minimac4 reads plain-text maps only; gunzip it first")
        cmd += ["--map", genetic_map.resolve()]
    if region_arg is not None:
        cmd += ["--region", region_arg]
    with scratch_dir(out_vcf) as tmp:
        result = tmp / "imputed.vcf.gz"
        cmd += ["-o", result, Path(ref_msav).resolve(), Path(target_vcf).resolve()]
        seconds = run_tool(cmd, tool="minimac4")
        if not result.is_file():
            raise RuntimeError(f"minimac4 exited 0 but wrote no {result.name}")
        index_and_move(result, out_vcf)
    return seconds
