"""Quality control of a user's genotyping-array target VCF against a phased reference panel.

What the Michigan and TOPMed imputation servers do before phasing, for one chromosome:
every target record is compared with the panel site at its position and given one action,

``multiallelic``
    more than one ALT allele: dropped.
``absent``
    no panel site at that position with the same allele set in any orientation: dropped.
``ambiguous``
    an A/T or C/G SNP whose strand the allele frequencies do not settle: dropped.
``low_call_rate``
    fewer than ``min_site_call_rate`` of the kept samples called: dropped.
``match``, ``swapped``, ``flipped``, ``flipped_swapped``
    kept, written with the panel's REF/ALT; ``swapped`` sites (target REF/ALT = panel ALT/REF)
    have their genotypes recoded 0 <-> 1 so the dosage counts the panel's ALT allele, and
    ``flipped`` sites (the other strand: A<->T, C<->G) take the panel's alleles. Indels are only
    ever ``match`` or ``swapped``.

An ambiguous SNP is kept as ``match`` (or ``swapped``) when the panel MAF is at most
``ambiguous_max_maf`` and the target ALT frequency (or 1 minus it) is within
``ambiguous_max_af_diff`` of the panel's (the strand of such a SNP cannot be told, only
whether its genotypes need recoding). Samples whose call rate is below
``min_sample_call_rate`` are dropped. The kept sites and samples are written as a bgzipped,
tabix-indexed VCF (``GT`` only, missing calls kept for the phasing step to fill), and every
target record's action as a TSV that :func:`omicslm.impute.targets.evaluate_targets` reads.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pysam

from omicslm.errors import InputError
from omicslm.impute.vcf_engines import open_vcf
from omicslm.io import runtime
from omicslm.io.atomic import atomic_indexed, atomic_open

logger = logging.getLogger(__name__)

#: Actions whose record is dropped, in the order they are decided (cf. ``targets.DROPPED_ACTIONS``).
DROP_REASONS = ("multiallelic", "absent", "ambiguous", "low_call_rate")
#: Actions whose record is kept with its genotypes recoded to the panel's orientation.
RECODE_ACTIONS = ("swapped", "flipped", "flipped_swapped")
TSV_COLUMNS = ("pos", "target_ref", "target_alt", "panel_ref", "panel_alt", "action", "call_rate")

_WHY = {
    "multiallelic": "more than one ALT allele",
    "absent": "no panel site with the same alleles",
    "ambiguous": "A/T or C/G SNP not settled by allele frequency",
    "low_call_rate": "site call rate below the threshold",
    "match": "same REF/ALT as the panel",
    "swapped": "REF/ALT swapped, genotypes recoded",
    "flipped": "other strand, alleles complemented",
    "flipped_swapped": "other strand and swapped, recoded",
}
_COMPLEMENT = str.maketrans("ACGT", "TGCA")
_AMBIGUOUS = ({"A", "T"}, {"C", "G"})

# A genotype is stored as one int8 code: (allele1 + 1) * 8 + (allele2 + 2) * 2 + phased, with
# allele -1 = missing and allele2 -2 = haploid; so a (sites, samples) matrix holds a chromosome.
_CODES = np.arange(24)
_A1, _A2, _PHASED = _CODES // 8 - 1, (_CODES // 2) % 4 - 2, _CODES % 2 == 1
_MISSING_CODE = (_A1 == -1) | (_A2 == -1)


def _gt_strings(swap: bool) -> np.ndarray:
    """VCF GT text of every code, alleles 0 <-> 1 exchanged when ``swap``."""
    def allele(a: int) -> str:
        return "." if a == -1 else str(1 - a if swap else a)
    return np.array([allele(a1) if a2 == -2 else f"{allele(a1)}{'|' if ph else '/'}{allele(a2)}"
                     for a1, a2, ph in zip(_A1, _A2, _PHASED)])


_GT_TEXT = {False: _gt_strings(False), True: _gt_strings(True)}


def _same_contig(a: str, b: str) -> bool:
    return a.removeprefix("chr") == b.removeprefix("chr")


# --------------------------------------------------------------------------- inputs


def _target_contig(path: Path, chrom: str) -> str:
    """Check ``path`` is bgzipped and indexed; return its name for the panel's contig ``chrom``."""
    if not path.is_file():
        raise InputError(path, "target VCF does not exist")
    with open(path, "rb") as fh:
        head = fh.read(18)
    if head[:2] != b"\x1f\x8b" or head[12:14] != b"BC":
        raise InputError(path, "target VCF is not bgzip-compressed; run `bgzip` on it, then `bcftools index -t`")
    index = next((Path(f"{path}{ext}") for ext in (".tbi", ".csi") if Path(f"{path}{ext}").is_file()), None)
    if index is None:
        raise InputError(path, f"target VCF has no index ({path.name}.tbi or .csi); run `bcftools index -t {path}`")
    with pysam.TabixFile(str(path), index=str(index)) as tbx:
        contigs = list(tbx.contigs)
    names = [c for c in contigs if _same_contig(c, chrom)]
    if not names:
        raise InputError(path, f"no records on chromosome {chrom} (nor under its other name with or without "
                               f"'chr'); the target's contigs are {', '.join(contigs) or 'none'}: no shared contig")
    if len(names) > 1:
        raise InputError(path, f"chromosome {chrom} appears under two names ({' and '.join(names)}); merge them")
    return names[0]


def _check_samples(target_vcf: Path, panel_vcf: Path) -> None:
    """Refuse target samples that are panel samples too: they would score their own haplotypes."""
    if not panel_vcf.is_file():
        raise InputError(panel_vcf, "panel VCF does not exist")
    target, panel = open_vcf(target_vcf, None, 1, lazy=True), open_vcf(panel_vcf, None, 1, lazy=True)
    shared = sorted(set(target.samples) & set(panel.samples))
    target.close()
    panel.close()
    if shared:
        raise InputError(target_vcf, f"{len(shared)} target sample(s) are also samples of the panel {panel_vcf} "
                                     f"({', '.join(shared[:5])}): they would be imputed from their own haplotypes")


def _encode(gt: np.ndarray, path: Path, where: str, samples: list[str], n_alt: int) -> np.ndarray:
    """Encode cyvcf2's ``genotype.array()`` (shape (n_samples, ploidy + 1)) as int8 codes, shape (n_samples,)."""
    if gt.shape[1] > 3:
        raise InputError(path, f"genotypes of ploidy {gt.shape[1] - 1}: target genotypes must be diploid",
                         record=where)
    a1 = np.maximum(gt[:, 0], -1)  # a sample without any GT value reads as missing
    a2 = gt[:, 1] if gt.shape[1] == 3 else np.full_like(a1, -2)
    bad = np.flatnonzero((a1 > n_alt) | (a2 > n_alt))
    if bad.size:
        raise InputError(path, f"sample {samples[bad[0]]} has an allele index beyond the {n_alt} ALT allele(s)",
                         record=where)
    return ((np.minimum(a1, 1) + 1) * 8 + (np.minimum(a2, 1) + 2) * 2 + (gt[:, -1] > 0)).astype(np.int8)


def _read_target(path: Path, contig: str) -> dict:
    """Records of ``contig`` in the target: ``pos``, ``ids``, ``ref``, ``alt`` (lists) and ``codes``.

    ``codes`` : ndarray, int8, shape (n_records, n_samples), genotypes as ``_encode`` stores them.
    """
    vcf = open_vcf(path, None, 1, lazy=True)
    samples, pos, ids, ref, alt, codes = list(vcf.samples), [], [], [], [], []
    try:
        for rec in vcf(contig):
            where = f"{contig}:{rec.POS}"
            if pos and rec.POS < pos[-1]:
                raise InputError(path, f"records are not sorted: position {rec.POS} comes after {pos[-1]}; "
                                       "run `bcftools sort` and index the result", record=where)
            gt = rec.genotype
            if gt is None:
                raise InputError(path, "record has no GT field", record=where)
            codes.append(_encode(gt.array(), path, where, samples, max(len(rec.ALT), 1)))
            pos.append(rec.POS)
            ids.append(rec.ID or ".")
            ref.append(rec.REF.upper())
            alt.append([a.upper() for a in rec.ALT])
    finally:
        vcf.close()
    if not pos:
        raise InputError(path, f"the index lists contig {contig} but no record on it could be read")
    matrix = np.vstack(codes) if codes else np.zeros((0, len(samples)), dtype=np.int8)
    return {"samples": samples, "pos": pos, "ids": ids, "ref": ref, "alt": alt, "codes": matrix}


def _read_panel(path: Path, chrom: str, positions: set[int]) -> tuple[dict, str]:
    """Panel sites at ``positions`` on ``chrom``: ``{pos: [(ref, alt, alt_freq), ...]}``.

    Also returns the panel's ``##contig`` header line for ``chrom``. Genotypes are decoded
    only at ``positions``, so the whole panel is never held.
    """
    vcf = open_vcf(path, None, 1, lazy=True)
    sites: dict[int, list[tuple[str, str, float]]] = {}
    n_seen = 0
    try:
        contig_line = next((line for line in vcf.raw_header.splitlines()
                            if line.startswith((f"##contig=<ID={chrom},", f"##contig=<ID={chrom}>"))),
                           f"##contig=<ID={chrom}>")
        indexed = any(Path(f"{path}{ext}").is_file() for ext in (".tbi", ".csi"))
        for rec in (vcf(chrom) if indexed else (r for r in vcf if r.CHROM == chrom)):
            n_seen += 1
            if rec.POS not in positions or len(rec.ALT) != 1:
                continue
            alleles = rec.genotype.array()[:, :2]
            called = alleles[alleles >= 0]
            af = float((called == 1).mean()) if called.size else np.nan
            sites.setdefault(rec.POS, []).append((rec.REF.upper(), rec.ALT[0].upper(), af))
    finally:
        vcf.close()
    if not n_seen:
        raise InputError(path, f"panel VCF has no records on contig {chrom}")
    return sites, contig_line


# --------------------------------------------------------------------------- decisions


def _alt_freq(codes: np.ndarray) -> float:
    """ALT allele frequency over the called alleles of one record's codes, shape (n_samples,)."""
    alleles = np.concatenate([_A1[codes], _A2[codes]])
    called = alleles[alleles >= 0]
    return float((called == 1).mean()) if called.size else np.nan


def _match(ref: str, alt: list[str], candidates, codes: np.ndarray, *, ambiguous_max_maf: float,
           ambiguous_max_af_diff: float) -> tuple[str, str, str]:
    """The action for one target record and the panel's (REF, ALT) it maps to ("." when none).

    ``candidates`` are the panel's ``(ref, alt, alt_freq)`` at the record's position and
    ``codes`` its genotypes (shape (n_samples,)), used for the target ALT frequency of an
    ambiguous SNP.
    """
    if len(alt) > 1:
        return "multiallelic", ".", "."
    if not alt:
        return "absent", ".", "."  # ALT '.': a monomorphic array site has no allele to match
    a = alt[0]
    snp = len(ref) == len(a) == 1 and set(ref + a) <= set("ACGT")
    if snp and {ref, a} in _AMBIGUOUS:
        for p_ref, p_alt, p_af in candidates:
            if {p_ref, p_alt} == {ref, a}:
                # the strand cannot be told, only whether the target's ALT is the panel's ALT
                # ("match": kept as is) or its REF ("swapped": recoded), from the frequencies
                t_af = _alt_freq(codes)
                if min(p_af, 1 - p_af) <= ambiguous_max_maf:
                    if abs(t_af - p_af) <= ambiguous_max_af_diff:
                        return "match", p_ref, p_alt
                    if abs(1 - t_af - p_af) <= ambiguous_max_af_diff:
                        return "swapped", p_ref, p_alt
                return "ambiguous", p_ref, p_alt
        return "absent", ".", "."
    orientations = [("match", ref, a), ("swapped", a, ref)]
    if snp:
        c_ref, c_alt = ref.translate(_COMPLEMENT), a.translate(_COMPLEMENT)
        orientations += [("flipped", c_ref, c_alt), ("flipped_swapped", c_alt, c_ref)]
    panel = {(p_ref, p_alt) for p_ref, p_alt, _ in candidates}
    for action, p_ref, p_alt in orientations:
        if (p_ref, p_alt) in panel:
            return action, p_ref, p_alt
    return "absent", ".", "."


def _call_rates(missing: np.ndarray, allele_ok: np.ndarray, *,
                min_sample_call_rate: float) -> tuple[np.ndarray, np.ndarray]:
    """Samples kept, shape (n_samples,), and every record's call rate over them, shape (n_records,).

    ``missing`` : bool, shape (n_records, n_samples). Samples go first: a sample's call rate
    is taken over the records whose alleles matched (not only over the sites passing the site
    filter, which would hide a sample's own gaps from it); then a record's call rate is taken
    over the kept samples, so a site is not dropped for the calls of a dropped sample.
    """
    if allele_ok.any():
        samples_kept = 1 - missing[allele_ok].mean(axis=0) >= min_sample_call_rate
    else:  # no site to judge the samples by; the overlap check reports it
        samples_kept = np.ones(missing.shape[1], dtype=bool)
    n_kept = max(int(samples_kept.sum()), 1)
    call_rate = 1 - missing[:, samples_kept].sum(axis=1) / n_kept
    return samples_kept, call_rate


# --------------------------------------------------------------------------- outputs


def _write_vcf(out_vcf: Path, target: dict, keep: np.ndarray, cols: np.ndarray, panel_alleles, actions,
               *, chrom: str, contig_line: str) -> None:
    """Write the kept records (``keep``: record indices) and samples (``cols``) as bgzipped VCF + .tbi."""
    header = ["##fileformat=VCFv4.2", "##source=omicslm.impute.target_qc", contig_line,
              '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
              "\t".join(["#CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO", "FORMAT",
                         *(target["samples"][j] for j in cols)])]
    with atomic_indexed(out_vcf) as tmp:
        with pysam.BGZFile(str(tmp), "wb") as out:
            out.write(("\n".join(header) + "\n").encode())
            for i in keep:
                text = _GT_TEXT[actions[i] in ("swapped", "flipped_swapped")][target["codes"][i, cols]]
                p_ref, p_alt = panel_alleles[i]
                line = f"{chrom}\t{target['pos'][i]}\t{target['ids'][i]}\t{p_ref}\t{p_alt}\t.\tPASS\t.\tGT\t"
                out.write((line + "\t".join(text.tolist()) + "\n").encode())
        pysam.tabix_index(str(tmp), preset="vcf", force=True)


def _write_tsv(out_tsv: Path, target: dict, panel_alleles, actions, call_rate: np.ndarray) -> None:
    with atomic_open(out_tsv) as fh:
        fh.write("\t".join(TSV_COLUMNS) + "\n")
        for i, pos in enumerate(target["pos"]):
            fields = (pos, target["ref"][i], ",".join(target["alt"][i]) or ".", *panel_alleles[i], actions[i],
                      f"{call_rate[i]:.4f}")
            fh.write("\t".join(map(str, fields)) + "\n")


def _log_summary(summary: dict, actions: list[str]) -> None:
    n, chrom = summary["n_records"], summary["chrom"]
    for reason in ("match", *RECODE_ACTIONS, *DROP_REASONS):
        verb = "dropped" if reason in DROP_REASONS else "kept"
        logger.info("target QC %s: %-15s %6d of %d records %s (%s)", chrom, reason, actions.count(reason), n, verb,
                    _WHY[reason])
    logger.info("target QC %s: %d of %d records kept; %d samples kept, %d dropped for call rate%s", chrom,
                summary["kept"], n, summary["samples_kept"], len(summary["samples_dropped"]),
                f": {', '.join(summary['samples_dropped'])}" if summary["samples_dropped"] else "")


# --------------------------------------------------------------------------- entry point


def qc_targets(target_vcf, panel_vcf, out_vcf, out_tsv, *, chrom: str, min_site_call_rate: float,
               min_sample_call_rate: float, ambiguous_max_maf: float, ambiguous_max_af_diff: float,
               min_panel_overlap: float = 0.5) -> dict:
    """QC the target VCF's records on ``chrom`` against the phased panel; write the kept ones.

    Parameters
    ----------
    target_vcf : path
        Array genotypes, bgzipped and indexed (.tbi or .csi), sorted; contig ``chrom`` with or
        without the ``chr`` prefix.
    panel_vcf : path
        Phased, biallelic panel VCF; ALT frequencies are computed from its genotypes.
    out_vcf, out_tsv : path
        Kept records (bgzipped VCF, contig ``chrom``, panel alleles, ``GT`` only, + ``.tbi``) and
        one TSV row per target record (:data:`TSV_COLUMNS`); ``<out_tsv stem>.summary.json``
        holds the returned summary.
    chrom : str
        The panel's name of the chromosome (e.g. ``"20"`` or ``"chr20"``).
    min_site_call_rate, min_sample_call_rate : float
        Least fraction of called genotypes of a site (over the kept samples) and of a sample.
    ambiguous_max_maf, ambiguous_max_af_diff : float
        An A/T or C/G SNP is kept when the panel MAF is at most the first and the target ALT
        frequency (or 1 minus it, then recoded) within the second of the panel's.
    min_panel_overlap : float
        Least fraction of the target records kept; fewer means the wrong genome build.

    Returns
    -------
    dict
        ``chrom, n_records, kept, dropped {reason: n}, recoded {action: n}, samples_kept (a count),
        samples_dropped [names], phased`` (every kept genotype phased and none missing).

    Raises
    ------
    InputError
        Target not bgzipped, not indexed, unsorted, without ``chrom``; a target sample also in
        the panel; no sample passing; too few records kept. Nothing is written then.
    """
    target_vcf, panel_vcf, out_vcf, out_tsv = map(Path, (target_vcf, panel_vcf, out_vcf, out_tsv))
    contig = _target_contig(target_vcf, chrom)
    _check_samples(target_vcf, panel_vcf)
    target = _read_target(target_vcf, contig)
    sites, contig_line = _read_panel(panel_vcf, chrom, set(target["pos"]))
    codes, n = target["codes"], len(target["pos"])
    decided = [_match(target["ref"][i], target["alt"][i], sites.get(target["pos"][i], ()), codes[i],
                      ambiguous_max_maf=ambiguous_max_maf, ambiguous_max_af_diff=ambiguous_max_af_diff)
               for i in range(n)]
    actions = [d[0] for d in decided]
    panel_alleles = [d[1:] if d[0] not in ("multiallelic", "absent") else (".", ".") for d in decided]
    missing = _MISSING_CODE[codes]
    allele_ok = np.array([a not in DROP_REASONS for a in actions], dtype=bool)
    samples_kept, call_rate = _call_rates(missing, allele_ok, min_sample_call_rate=min_sample_call_rate)
    if not samples_kept.any():
        raise InputError(target_vcf, f"no sample of {len(samples_kept)} has a call rate of at least "
                                     f"{min_sample_call_rate:g} on {contig}")
    keep = np.flatnonzero(allele_ok & (call_rate >= min_site_call_rate))
    for i in np.flatnonzero(allele_ok & (call_rate < min_site_call_rate)):
        actions[i] = "low_call_rate"
    if len(keep) < min_panel_overlap * n:
        counts = ", ".join(f"{r} {actions.count(r)}" for r in DROP_REASONS)
        raise InputError(target_vcf, f"only {100 * len(keep) / n:.1f}% of the target sites on {contig} are in the "
                                     f"panel {panel_vcf} with matching alleles ({counts}; at least "
                                     f"{100 * min_panel_overlap:g}% needed): wrong genome build?")
    cols = np.flatnonzero(samples_kept)
    kept_codes = codes[np.ix_(keep, cols)]
    summary = {
        "chrom": chrom, "n_records": n, "kept": len(keep),
        "dropped": {r: actions.count(r) for r in DROP_REASONS},
        "recoded": {r: actions.count(r) for r in RECODE_ACTIONS},
        "samples_kept": len(cols),
        "samples_dropped": [s for s, k in zip(target["samples"], samples_kept) if not k],
        "phased": bool((_PHASED | (_A2 == -2))[kept_codes].all() and not _MISSING_CODE[kept_codes].any()),
    }
    _write_vcf(out_vcf, target, keep, cols, panel_alleles, actions, chrom=chrom, contig_line=contig_line)
    _write_tsv(out_tsv, target, panel_alleles, actions, call_rate)
    runtime.write_json(out_tsv.with_name(f"{out_tsv.stem}.summary.json"), summary)
    _log_summary(summary, actions)
    return summary
