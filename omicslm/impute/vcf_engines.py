"""The two record decoders of :func:`omicslm.impute.vcf_records.iter_vcf_chunks`.

Both yield :class:`DecodedChunk` s, the candidate biallelic SNPs (and, when asked, indels) of a chunk of records with
their genotypes decoded but not yet checked, and count what they skip in a
:class:`ReadState`. :func:`cyvcf2_chunks` iterates records with cyvcf2 (anything htslib
reads, BCF too); :func:`text_chunks` splits VCF text lines in Python and decodes the
genotypes of a whole chunk at once with numpy
(:func:`omicslm.impute.vcf_gt.decode_gt_columns`). They give identical output.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path

import cyvcf2
import numpy as np
import pysam
from tqdm import tqdm

from omicslm.errors import InputError
from omicslm.impute.vcf_gt import decode_gt_columns

#: Reasons a VCF record is not ingested, in the order they are tested.
SKIP_REASONS = ("multiallelic", "indel_or_other", "missing", "unphased", "below_maf")
_BASES = frozenset("ACGT")
#: the bases as one-byte bytes (``ref in``) and as the ints iterating a bytes allele yields
_BASES_B = frozenset(b.encode() for b in _BASES) | frozenset(b"ACGT")


def open_vcf(path: Path, samples: list[str] | None, threads: int, *, lazy: bool = False) -> cyvcf2.VCF:
    """``cyvcf2.VCF(path)`` reading ``samples`` (None = all); an unreadable header is an InputError."""
    try:
        return cyvcf2.VCF(str(path), samples=samples, threads=threads, lazy=lazy)
    except Exception as e:  # cyvcf2 raises OSError, ValueError or a bare Exception
        dup = duplicate_sample_names(path)
        if dup:
            raise InputError(path, f"duplicate sample name(s) in the VCF header: {', '.join(dup[:10])} (each sample "
                                   "needs its own name: rename with 'bcftools reheader -s')", record="#CHROM") from None
        raise InputError(path, f"cannot read VCF header: {e}") from None


def duplicate_sample_names(path) -> list[str]:
    """Sample names the ``#CHROM`` line of a (bgzipped or plain) VCF repeats, sorted; [] when none or unreadable."""
    import gzip
    from collections import Counter

    try:
        with open(path, "rb") as probe:
            gz = probe.read(2) == b"\x1f\x8b"
        with (gzip.open(path, "rt", errors="replace") if gz else open(path, errors="replace")) as fh:
            for line in fh:
                if line.startswith("#CHROM"):
                    counts = Counter(line.rstrip("\n").split("\t")[9:])
                    return sorted(name for name, n in counts.items() if n > 1)
                if not line.startswith("#"):
                    break
    except (OSError, EOFError, ValueError):
        pass
    return []


@dataclass
class ReadState:
    """Counters and order checks of one read."""

    path: Path
    contig: str | None = None
    last_pos: int = 0
    n_records: int = 0
    skipped: dict = field(default_factory=lambda: dict.fromkeys(SKIP_REASONS, 0))
    #: n_records and skipped when :meth:`counts_since_last` last ran
    reported: tuple = field(default_factory=lambda: (0, dict.fromkeys(SKIP_REASONS, 0)))

    def check_order(self, chrom: str, pos: int) -> None:
        """Raise unless records stay on one contig in non-decreasing position order."""
        if chrom != self.contig:
            if self.contig is not None:
                raise InputError(
                    self.path,
                    f"second contig {chrom} after {self.contig}: ingest one contig per VCF "
                    "(split it with 'bcftools view -r')",
                    record=f"{chrom}:{pos}",
                )
            self.contig = chrom
        if pos < self.last_pos:
            raise InputError(
                self.path, f"position {pos} after {self.last_pos}: VCF is not sorted", record=f"{chrom}:{pos}"
            )
        self.last_pos = pos

    def counts_since_last(self) -> tuple[int, dict]:
        """Records read, and skipped by reason, since the previous call."""
        n, skipped = self.reported
        delta = self.n_records - n, {k: v - skipped[k] for k, v in self.skipped.items()}
        self.reported = self.n_records, dict(self.skipped)
        return delta


@dataclass
class DecodedChunk:
    """Candidate biallelic SNPs of one chunk of records, genotypes decoded.

    ``hap`` : ndarray, int8, shape (n_sites, n_samples, 2): allele indices
    (-1 missing, -2 absent i.e. haploid). ``phased`` : ndarray, bool, shape
    (n_sites, n_samples), True for '|'. ``clean``: the decoder already knows every
    allele is 0/1 and every genotype phased, so checks can be skipped.
    """

    where: list
    pos: list
    ids: list
    ref: list
    alt: list
    hap: np.ndarray
    phased: np.ndarray
    clean: bool = False


def _is_snp(ref, alt, bases) -> bool:
    return len(ref) == 1 and len(alt) == 1 and ref in bases and alt in bases


def _is_indel(ref, alt, bases) -> bool:
    """A biallelic indel (or multi-base substitution) spelled in bases: no symbolic (``<DEL>``), ``*`` or N allele."""
    return ref != alt and all(b in bases for b in ref) and all(b in bases for b in alt)


def _kept_alleles(ref, alt, bases, indels: bool) -> bool:
    return _is_snp(ref, alt, bases) or (indels and _is_indel(ref, alt, bases))


def cyvcf2_chunks(path: Path, st: ReadState, samples: list[str] | None, chunk_size: int, threads: int,
                  indels: bool = False):
    """Yield :class:`DecodedChunk` s decoded by cyvcf2 (reads anything htslib reads, BCF too).

    ``indels``: keep biallelic indels too (else they are skipped as ``indel_or_other``).
    """
    reader = open_vcf(path, samples, threads)
    try:
        meta, gts = [], []
        for rec in tqdm(reader, desc=f"ingest {path.name}", unit=" records", disable=None):
            st.n_records += 1
            chrom, pos = rec.CHROM, rec.POS
            st.check_order(chrom, pos)
            alts = rec.ALT
            if len(alts) > 1:
                st.skipped["multiallelic"] += 1
                continue
            ref = rec.REF
            if not alts or not _kept_alleles(ref, alts[0], _BASES, indels):
                st.skipped["indel_or_other"] += 1
                continue
            where = f"{chrom}:{pos}"
            try:
                g = rec.genotype
            except Exception:  # cyvcf2: "couldn't get genotypes for variant"
                g = None
            if g is None:
                raise InputError(path, "record has no GT (genotype) field", record=where)
            arr = g.array()
            if arr.shape[1] != 3:
                raise InputError(path, f"genotypes have ploidy {arr.shape[1] - 1}: they must be diploid", record=where)
            meta.append((where, pos, rec.ID or ".", ref, alts[0]))
            gts.append(arr)
            if len(meta) == chunk_size:
                yield _cyvcf2_chunk(meta, gts)
                meta, gts = [], []
        if meta:
            yield _cyvcf2_chunk(meta, gts)
    finally:
        reader.close()


def _cyvcf2_chunk(meta: list, gts: list) -> DecodedChunk:
    arr = np.stack(gts)  # (k, n, 3) int16: allele 1, allele 2, phased flag
    hap = np.clip(arr[:, :, :2], -2, 127).astype(np.int8)
    phased = arr[:, :, 2].astype(bool)
    return DecodedChunk(*map(list, zip(*meta)), hap, phased)


@dataclass
class _TextRows:
    """Candidate SNP records of one chunk as split from VCF text, genotypes not decoded yet."""

    where: list = field(default_factory=list)
    pos: list = field(default_factory=list)
    ids: list = field(default_factory=list)
    ref: list = field(default_factory=list)
    alt: list = field(default_factory=list)
    fmts: list = field(default_factory=list)
    fields: list = field(default_factory=list)

    def add(self, where: str, pos: int, parts: list[bytes]) -> None:
        gt = parts[9].rstrip(b"\r\n")
        self.where.append(where)
        self.pos.append(pos)
        self.ids.append(parts[2].decode())
        self.ref.append(parts[3].decode())
        self.alt.append(parts[4].decode())
        self.fmts.append(parts[8])
        self.fields.append(gt)

    def decode(self, path: Path, st: ReadState, names: list[str], keep: np.ndarray | None, min_mac) -> DecodedChunk:
        """Decode the genotypes (all VCF samples, then the ``keep`` columns) into a :class:`DecodedChunk`."""
        rows, hap, phased, clean = decode_gt_columns(path, self.where, self.fmts, self.fields, names, min_mac)
        if keep is not None:
            hap, phased = hap[:, keep], phased[:, keep]
        meta = [self.where, self.pos, self.ids, self.ref, self.alt]
        if not rows.all():
            st.skipped["below_maf"] += int((~rows).sum())
            meta = [[x for x, r in zip(m, rows) if r] for m in meta]
        return DecodedChunk(*meta, hap, phased, clean)


def _split_text_record(path: Path, st: ReadState, line: bytes, n_cols: int, indels: bool = False):
    """Split one VCF text record: ``(CHROM:POS, POS, columns)``, or None for a skipped non-SNP."""
    parts = line.split(b"\t", 9)
    chrom = parts[0].decode(errors="replace")
    if len(parts) < 10:
        raise InputError(
            path,
            f"record has {len(parts)} tab-separated columns, expected {n_cols}",
            record=f"{chrom}:{parts[1].decode(errors='replace') if len(parts) > 1 else '?'}",
        )
    try:
        pos = int(parts[1])
    except ValueError:
        bad = parts[1].decode(errors="replace")
        raise InputError(path, f"POS '{bad}' is not an integer", record=chrom) from None
    st.n_records += 1
    st.check_order(chrom, pos)
    if b"," in parts[4]:
        st.skipped["multiallelic"] += 1
        return None
    if not _kept_alleles(parts[3], parts[4], _BASES_B, indels):
        st.skipped["indel_or_other"] += 1
        return None
    fmt = parts[8]
    if fmt != b"GT" and not fmt.startswith(b"GT:"):
        raise InputError(path, "record has no GT (genotype) field first in FORMAT", record=f"{chrom}:{pos}")
    return f"{chrom}:{pos}", pos, parts


def text_chunks(
    path: Path, st: ReadState, names: list[str], keep: np.ndarray | None, chunk_size: int, min_maf: float,
    indels: bool = False,
):
    """Yield :class:`DecodedChunk` s from a VCF text file (bgzipped or plain) parsed with numpy.

    ``keep`` : ndarray, int, indices of the VCF samples to keep (None = all). ``indels``: keep biallelic indels.
    Sites that are certainly below ``min_maf`` are dropped here, without decoding.
    """
    # Rare sites are dropped by decode_gt_columns before unpacking (an exact shortcut of
    # the MAF filter of iter_vcf_chunks); not with a sample subset, where AF is over the
    # kept samples only.
    min_mac = min_maf * 2 * len(names) if keep is None and min_maf > 0 else None
    rows = _TextRows()
    fh = pysam.BGZFile(str(path), "rb")
    with contextlib.ExitStack() as stack:
        # pysam ends iteration quietly on a corrupt block and reports it at close
        stack.callback(_close_bgzf, fh, path, st)
        for line in tqdm(fh, desc=f"ingest {path.name}", unit=" lines", disable=None):
            if line[:1] == b"#" or not line:
                continue
            rec = _split_text_record(path, st, line, 9 + len(names), indels)
            if rec is None:
                continue
            rows.add(*rec)
            if len(rows.where) == chunk_size:
                yield rows.decode(path, st, names, keep, min_mac)
                rows = _TextRows()
    if rows.where:
        yield rows.decode(path, st, names, keep, min_mac)


def _close_bgzf(fh, path: Path, st: ReadState) -> None:
    try:
        fh.close()
    except OSError:
        at = f" after record {st.contig}:{st.last_pos}" if st.contig else ""
        problem = f"corrupt bgzip data{at}: decompression failed (re-download or re-compress the file)"
        raise InputError(path, problem) from None
