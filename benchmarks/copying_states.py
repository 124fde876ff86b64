"""The copying model alone, windowed state sets vs one composite set per query: time and r², one process.

Runs on an ingested panel of the workflow (``results/impute`` of a run that made panel.h5, split.tsv,
array_sites.tsv and windows.tsv): the test haplotypes are the queries, the reference + validation
samples the panel, exactly as imputation does; the copying model's ALT probabilities are scored
as dosages at the non-array sites by panel-MAF bin (:func:`omicslm.impute.evaluate.score`).

    python benchmarks/copying_states.py --results /path/to/run/results/impute --config config.yaml [--config preset.yaml]

Prints one table row per (states, bin) and, last, ``ratio composite/window copying wall: X.XX``.
"""

from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path

import numpy as np
import torch

from omicslm.config import load_config
from omicslm.impute.evaluate import score
from omicslm.impute.layout import read_panel
from omicslm.impute.ragbert.train import resolve_variant
from omicslm.impute.ragbert.windows import haplotype_columns, read_windows, window_data
from omicslm.impute.split import PANEL_ROLES, panel_alt_frequency, read_array_sites, read_split, role_indices


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--results", required=True, type=Path, help="results/impute of a workflow run")
    ap.add_argument("--config", action="append", required=True, help="config files, merged left to right")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--max-states", type=int, nargs="+", default=[1024])
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg_all = load_config(*args.config)
    cfg = resolve_variant(cfg_all["impute"]["model"], "ragbert")
    r = args.results
    panel = read_panel(r / "panel.h5")
    split = read_split(r / "split.tsv")
    ref_idx, test_idx = role_indices(panel, split, PANEL_ROLES), role_indices(panel, split, ["test"])
    array = read_array_sites(r / "array_sites.tsv", panel)["idx"].to_numpy()
    observed = np.zeros(panel.n_variants, dtype=bool)
    observed[array] = True
    windows = read_windows(r / "windows.tsv", panel.n_variants)
    query = haplotype_columns(panel.hap, test_idx)
    truth = query.reshape(panel.n_variants, -1, 2).sum(axis=2)[~observed]
    af = panel_alt_frequency(panel.hap[~observed], ref_idx)
    gmap = r / "inputs/genetic_map.plink.map"
    runs = [("window", None)] + [("composite", m) for m in args.max_states]
    walls = {}
    print(f"panel {len(ref_idx)} samples x {panel.n_variants} sites ({observed.sum()} array), {len(test_idx)} test "
          f"samples, {len(windows)} windows, {args.threads} threads")
    print("states\tmax_states\tseconds\tbin\tn_sites\tr2\tr2_lo\tr2_hi")
    for states, m in runs:
        c = copy.deepcopy(cfg)
        c["copying"].update(states=states, **({"max_states": m} if m else {}))
        started = time.perf_counter()
        data = window_data(panel, windows, observed, query_idx=test_idx, query_hap=query, labels=False,
                           panel_idx=ref_idx, cfg=c, exclude_self=False, seed=0, threads=args.threads,
                           window_sites=int(cfg_all["impute"]["windows"]["sites"]),
                           genetic_map=gmap if gmap.exists() else None)
        seconds = time.perf_counter() - started
        walls[(states, m)] = seconds
        p = data.copy_prob[~observed].reshape(-1, len(test_idx), 2)
        dosage = p.sum(axis=2)
        table = score(truth, dosage, np.rint(dosage).astype(np.int8), af, bins=cfg_all["impute"]["evaluate"]["maf_bins"],
                      n_boot=200, seed=0)
        for _, row in table.iterrows():
            if row["n_sites"]:
                print(f"{states}\t{m or '-'}\t{seconds:.1f}\t{row['bin']}\t{row['n_sites']}\t{row['r2']:.4f}\t"
                      f"{row['r2_lo']:.4f}\t{row['r2_hi']:.4f}")
    best = min(v for k, v in walls.items() if k[0] == "composite")
    print(f"ratio composite/window copying wall: {best / walls[('window', None)]:.2f}")


if __name__ == "__main__":
    main()
