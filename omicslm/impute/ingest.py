"""Ingest a phased VCF into the HDF5 panel layout.

:func:`vcf_to_hdf5` streams a VCF in chunks of records, keeps the biallelic SNPs (and indels) of the
samples listed in a population panel file, checks that every genotype is diploid and
phased, filters on minor-allele frequency and writes the arrays described in
:mod:`omicslm.impute.layout`. :func:`omicslm.impute.ragbert.windows.write_windows` cuts the
kept sites into the overlapping windows a model is trained on.

Records are read by :func:`omicslm.impute.vcf_records.iter_vcf_chunks`: cyvcf2 (htslib)
for the header and BCF, and by default a numpy decoder for VCF text that is 3-4x faster
than cyvcf2's per-record ``genotype.array()`` and faster than ``bcftools view | query``
(see benchmarks/ingest.py); both give identical output.

Bad input (a missing sample, an unphased genotype, an unsorted or truncated file) raises
:class:`omicslm.errors.InputError` naming the file, the record and the problem; no
output is left behind because every file is written through :mod:`omicslm.io.atomic`.
"""

from __future__ import annotations

import logging
import os
import time
import zlib
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import h5py
import numpy as np
import pandas as pd

from omicslm.errors import InputError
from omicslm.impute import layout
from omicslm.impute.population_panel import (PANEL_COLUMNS, PANEL_REQUIRED, Populations, match_samples,
                                              read_population_panel)
from omicslm.impute.vcf_records import (
    ENGINES,
    ON_UNPHASED,
    SKIP_REASONS,
    VcfChunk,
    check_read_options,
    iter_vcf_chunks,
    read_vcf_samples,
)
from omicslm.io.atomic import atomic_path

__all__ = ["ENGINES", "ON_UNPHASED", "PANEL_COLUMNS", "PANEL_REQUIRED", "SKIP_REASONS", "INGEST_SKIP_REASONS",
           "read_population_panel",
           "vcf_to_hdf5"]

log = logging.getLogger(__name__)

#: Reasons a record is not ingested: the reader's, then a second record at a kept site's position.
INGEST_SKIP_REASONS = SKIP_REASONS + ("shared_position",)


def _type_table() -> np.ndarray:
    """``layout.TYPE_NAMES`` index of each (REF, ALT) pair of base codes (A, C, G, T = 0..3); -1 for REF == ALT."""
    table = np.full((4, 4), -1, dtype=np.int8)
    for i, name in enumerate(layout.SNP_TYPES):
        table["ACGT".index(name[0]), "ACGT".index(name[2])] = i
    return table


_TYPE_TABLE = _type_table()
_INS, _DEL, _MNP = (layout.TYPE_NAMES.index(t) for t in ("INS", "DEL", "MNP"))
#: byte -> base code (A, C, G, T = 0..3)
_BASE_CODE = np.zeros(256, dtype=np.intp)
_BASE_CODE[np.frombuffer(b"ACGT", dtype=np.uint8)] = np.arange(4)
#: Uncompressed size of one HDF5 chunk of calldata/HAP (bytes): big enough for gzip to
#: work well, small enough that reading one window decompresses little.
_HAP_CHUNK_BYTES = 1 << 20


# --------------------------------------------------------------------------- panel file


# --------------------------------------------------------------------------- HDF5 output


class _HapWriter:
    """Append (n_sites, n_samples, 2) int8 blocks to a resizable, compressed HDF5 dataset.

    With gzip, whole HDF5 chunks are deflated by a worker thread (zlib releases the
    GIL) and stored with ``write_direct_chunk``, so compression runs on a second core
    while the next VCF chunk is parsed; this is byte-for-byte what HDF5's own deflate
    filter would store. Other filters go through h5py's normal (serial) write.
    """

    #: compressed chunks waiting to be stored; bounds the memory held by the worker
    MAX_QUEUED = 4
    #: h5py's default gzip level, used when compression_opts is None
    DEFAULT_GZIP_LEVEL = 4

    def __init__(self, h5: h5py.File, n_samples: int, compression: str | None, compression_opts):
        self.rows = max(1, _HAP_CHUNK_BYTES // (2 * max(n_samples, 1)))
        self.ds = h5.create_dataset(
            "calldata/HAP",
            shape=(0, n_samples, 2),
            maxshape=(None, n_samples, 2),
            dtype="i1",
            chunks=(self.rows, n_samples, 2),
            compression=compression,
            # lzf and None take no level
            compression_opts=compression_opts if compression == "gzip" else None,
        )
        self.direct = compression == "gzip"
        self.level = self.DEFAULT_GZIP_LEVEL if compression_opts is None else int(compression_opts)
        self.pending: list[np.ndarray] = []
        self.n_pending = 0
        self.n_submitted = 0
        self.futures: deque = deque()
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hap-deflate") if self.direct else None

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        elif self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)

    def append(self, hap: np.ndarray) -> None:
        if not self.direct:
            n = self.ds.shape[0]
            self.ds.resize(n + len(hap), axis=0)
            self.ds[n:] = hap
            return
        self.pending.append(hap)
        self.n_pending += len(hap)
        if self.n_pending >= self.rows:
            buf = np.concatenate(self.pending)
            full = len(buf) - len(buf) % self.rows
            for start in range(0, full, self.rows):
                self._submit(buf[start : start + self.rows])
            rest = buf[full:]
            self.pending, self.n_pending = ([rest] if len(rest) else []), len(rest)
        self._store(block=False)

    def close(self) -> None:
        if not self.direct:
            return
        if self.n_pending:
            self._submit(np.concatenate(self.pending))
            self.pending, self.n_pending = [], 0
        self._store(block=True)
        self.pool.shutdown(wait=True)

    def _submit(self, block: np.ndarray) -> None:
        n = len(block)
        if n < self.rows:  # HDF5 stores edge chunks full size; the padding is never read
            block = np.concatenate([block, np.zeros((self.rows - n, *block.shape[1:]), dtype=block.dtype)])
        data = np.ascontiguousarray(block, dtype=np.int8)
        self.futures.append((self.n_submitted, n, self.pool.submit(zlib.compress, memoryview(data), self.level)))
        self.n_submitted += n

    def _store(self, block: bool) -> None:
        while self.futures and (block or self.futures[0][2].done() or len(self.futures) > self.MAX_QUEUED):
            offset, n, fut = self.futures.popleft()
            payload = fut.result()
            if self.ds.shape[0] < offset + n:
                self.ds.resize(offset + n, axis=0)
            self.ds.id.write_direct_chunk((offset, 0, 0), payload)


def vcf_to_hdf5(vcf: str | os.PathLike, panel: str | os.PathLike, out_h5: str | os.PathLike, *,
                min_maf: float = 0.01, on_unphased: str = "error", chunk_size: int = 2000,
                panel_subset: bool = False, engine: str = "auto", threads: int = 2,
                compression: str | None = "gzip", compression_opts: int | None = 1, indels: bool = False) -> dict:
    """Convert a phased VCF of one contig into the HDF5 panel layout (format v2).

    Parameters
    ----------
    vcf : path-like
        bgzipped (``.vcf.gz``) or plain VCF (or BCF), one contig, sorted, with GT.
    panel : path-like
        Population panel file (see :func:`read_population_panel`).
    out_h5 : path-like
        Output HDF5 file, laid out as in :mod:`omicslm.impute.layout`; written atomically.
    min_maf : float
        Keep a biallelic site when ``min(AF, 1 - AF) >= min_maf``, AF over the kept
        samples' haplotypes.
    on_unphased : {"error", "drop_site"}
        What to do with an unphased or missing genotype: stop with an
        :class:`InputError`, or drop the site (counted as ``unphased`` / ``missing``).
    chunk_size : int
        VCF records decoded per chunk; memory is bounded by this, not by the file
        (apart from the int8 output, appended to a chunked HDF5 dataset).
    panel_subset : bool
        False: every panel sample must be in the VCF. True: the panel may list more
        samples than the VCF (e.g. the 2,535-sample 1000 Genomes panel for a subset).
    engine : {"auto", "text", "cyvcf2"}
        Record decoder (see :func:`omicslm.impute.vcf_records.iter_vcf_chunks`): "text"
        (numpy, several times faster on wide panels), "cyvcf2" (any htslib input), "auto"
        = "text" for VCF text, "cyvcf2" for BCF. Both give identical output.
    threads : int
        htslib threads for bgzip decompression in the cyvcf2 engine.
    compression, compression_opts
        h5py filter for ``calldata/HAP`` (gzip level 1: fast, and 0/1 bytes shrink a lot).
    indels : bool
        Keep biallelic indels too (alleles spelled in ACGT). One site per position: where a SNP and an
        indel (or two indels) share one, the SNP (else the first record) is kept and the others are
        counted as ``shared_position``.

    Returns
    -------
    dict
        ``n_records`` (VCF records read), ``n_kept``, ``n_samples``, ``skipped``
        (reason -> count, reasons in :data:`INGEST_SKIP_REASONS`), ``seconds``.

    Raises
    ------
    InputError
        Unreadable, truncated or empty VCF; no GT; unsorted positions, duplicate kept
        positions or several contigs; haploid, unphased or missing genotypes (with
        ``on_unphased="error"``); samples missing from the VCF or the panel; nothing
        left after filtering.
    """
    t0 = time.perf_counter()
    check_read_options(on_unphased=on_unphased, engine=engine, min_maf=min_maf, chunk_length=chunk_size,
                       chunk_arg="chunk_size")
    path = Path(vcf)
    pan = read_population_panel(panel)
    kept = match_samples(path, panel, pan, read_vcf_samples(path), panel_subset)
    chunks = iter_vcf_chunks(path, samples=kept, chunk_length=chunk_size, engine=engine,
                             on_unphased=on_unphased, min_maf=min_maf, threads=threads, indels=indels)
    pan = pan.set_index("sample").loc[kept]
    sites = _SiteTable(path, Populations(pan["pop"].to_numpy()))
    with atomic_path(out_h5) as tmp, h5py.File(tmp, "w") as h5:
        with _HapWriter(h5, len(kept), compression, compression_opts) as writer:
            for ch in chunks:
                keep = sites.add(ch)
                if keep is not None:
                    writer.append(ch.gt if len(keep) == len(ch.pos) else ch.gt[keep])
        sites.write(h5, min_maf)
        _write_samples(h5, kept, pan, sites.pops)
        _write_attrs(h5, sites, path, min_maf, indels)
    seconds = time.perf_counter() - t0
    log.info("%s: kept %d of %d records (%d samples, contig %s) in %.1f s; skipped: %s", path, sites.n_kept,
             sites.n_records, len(kept), sites.contig, seconds, ", ".join(f"{k} {v}" for k, v in sites.skipped.items()))
    return {"n_records": sites.n_records, "n_kept": sites.n_kept, "n_samples": len(kept),
            "skipped": dict(sites.skipped), "seconds": seconds}


class _SiteTable:
    """The ``variants/*`` arrays of the kept sites and the record counts, gathered chunk by chunk."""

    def __init__(self, path: Path, pops: Populations):
        self.path, self.pops, self.n = path, pops, len(pops.index)
        self.parts = {k: [] for k in ("pos", "id", "ref", "alt", "type", "af", "af_pop", "geno")}
        self.contig, self.last_pos, self.last_snp, self.n_records, self.n_kept = None, 0, False, 0, 0
        self.skipped = dict.fromkeys(INGEST_SKIP_REASONS, 0)

    def add(self, ch: VcfChunk) -> np.ndarray | None:
        """Count a chunk's records, check its sites and gather the kept ones' arrays.

        Returns the indices (into the chunk) of the kept sites, one per position, or None when none is kept.
        """
        self.contig = ch.contig
        self.n_records += ch.n_records
        for reason, n in ch.skipped.items():
            self.skipped[reason] += n
        if not len(ch.pos):
            return None
        vtype = _site_types(self.path, ch)
        keep = _one_per_position(self.path, ch, vtype, self.last_pos, self.last_snp)
        self.skipped["shared_position"] += len(ch.pos) - len(keep)
        if not len(keep):
            return None
        self.last_pos, self.last_snp = int(ch.pos[keep[-1]]), bool(layout.is_snp_type(vtype[keep[-1]]))
        gt = ch.gt[keep]
        counts = gt[:, :, 0] + gt[:, :, 1]  # (k, n) alt alleles per genotype
        het = np.count_nonzero(counts == 1, axis=1)
        hom_alt = np.count_nonzero(counts == 2, axis=1)
        n = self.n
        for key, part in (("pos", ch.pos[keep]), ("id", ch.id[keep]), ("ref", ch.ref[keep]), ("alt", ch.alt[keep]),
                          ("type", vtype[keep]), ("af", (ch.ac[keep] / (2.0 * n)).astype(np.float32)),
                          ("af_pop", self.pops.alt_freq(counts)),
                          ("geno", np.stack([n - het - hom_alt, het, hom_alt], axis=1) / n)):
            self.parts[key].append(part)
        self.n_kept += len(keep)
        return keep

    def write(self, h5: h5py.File, min_maf: float) -> None:
        """Write ``variants/*``; InputError when the VCF has no records or no site was kept."""
        if self.n_records == 0:
            raise InputError(self.path, "VCF has a header but no records")
        if self.n_kept == 0:
            raise InputError(self.path, f"no biallelic site with MAF >= {min_maf:g} among {self.n_records} records")
        col = {k: np.concatenate(v) for k, v in self.parts.items()}
        h5["variants/POS"] = col["pos"]
        h5["variants/REF"] = np.char.encode(col["ref"].astype(str), "ascii").astype("S")
        h5["variants/ALT"] = np.char.encode(col["alt"].astype(str), "ascii").astype("S")
        h5["variants/ID"] = col["id"].astype("S")
        h5["variants/TYPE"] = col["type"]
        h5["variants/AF"] = col["af"]
        h5["variants/AF_POP"] = col["af_pop"]
        h5["variants/GENO_FREQ"] = col["geno"].astype(np.float32)


def _site_types(path: Path, ch: VcfChunk) -> np.ndarray:
    """Variant class (index in ``layout.TYPE_NAMES``) of each site: ndarray, int8, shape (n,).

    Single-base sites take their substitution; longer alleles are INS, DEL or MNP by length.
    Raises InputError at a site whose REF equals its ALT.
    """
    ref_len, alt_len = np.char.str_len(ch.ref.astype(str)), np.char.str_len(ch.alt.astype(str))
    snp = (ref_len == 1) & (alt_len == 1)
    vtype = np.where(alt_len > ref_len, _INS, np.where(alt_len < ref_len, _DEL, _MNP)).astype(np.int8)
    if snp.any():
        one = np.flatnonzero(snp)
        vtype[one] = _TYPE_TABLE[_BASE_CODE[ch.ref[one].astype("S1").view(np.uint8)],
                                 _BASE_CODE[ch.alt[one].astype("S1").view(np.uint8)]]
    same = np.flatnonzero((vtype < 0) | (ch.ref == ch.alt))
    if len(same):
        i = int(same[0])
        raise InputError(path, f"REF equals ALT ({ch.ref[i]}): not a variant", record=f"{ch.contig}:{ch.pos[i]}")
    return vtype


def _one_per_position(path: Path, ch: VcfChunk, vtype: np.ndarray, last_pos: int, last_snp: bool) -> np.ndarray:
    """Indices of the sites kept where records share a position: ndarray, int64, increasing.

    A SNP and indels at one position (or several indels): the SNP is kept, else the first record; a position the
    previous chunk already kept is dropped. Two SNPs at one position are a split multiallelic site: InputError.
    """
    pos, snp = ch.pos, layout.is_snp_type(vtype)
    run = np.cumsum(np.r_[True, pos[1:] != pos[:-1]]) - 1
    n_snp = np.bincount(run, weights=snp)
    twice = np.flatnonzero(n_snp > 1)
    if last_snp and pos[0] == last_pos and n_snp[0] >= 1:
        twice = np.r_[0, twice]
    if len(twice):
        p = int(pos[np.flatnonzero(run == twice[0])[0]])
        raise InputError(path, f"duplicate position {p}: two biallelic SNPs at one position "
                               "(merge them with 'bcftools norm -m+', or remove one)", record=f"{ch.contig}:{p}")
    order = np.lexsort((np.arange(len(pos)), ~snp, run))  # by run, the SNP first, then file order
    first = order[np.r_[True, run[order][1:] != run[order][:-1]]]
    keep = np.sort(first)
    return keep[pos[keep] != last_pos].astype(np.int64)


def _write_samples(h5: h5py.File, kept: list[str], pan: pd.DataFrame, pops: Populations) -> None:
    h5["samples/ID"] = np.array(kept, dtype="S")
    h5["samples/POP"] = pops.index
    h5["samples/SUPER_POP"] = pan["super_pop"].to_numpy().astype("S")
    h5["populations/NAME"] = pops.names.astype("S")


def _write_attrs(h5: h5py.File, sites: _SiteTable, path: Path, min_maf: float, indels: bool) -> None:
    h5.attrs["format_version"] = layout.FORMAT_VERSION
    h5.attrs["contig"] = sites.contig
    h5.attrs["source_vcf"] = str(path)
    h5.attrs["min_maf"] = float(min_maf)
    h5.attrs["indels"] = bool(indels)
    h5.attrs["type_names"] = layout.TYPE_NAMES
    for reason, n in sites.skipped.items():
        h5.attrs[f"n_skipped_{reason}"] = n
