"""Build a small HDF5 panel in the documented layout, without going through a VCF."""

import h5py
import numpy as np

from omicslm.impute.layout import FORMAT_VERSION, TYPE_NAMES


def make_panel_h5(path, hap, pos=None, pops=None, contig="21"):
    """hap: int8 (n_variants, n_samples, 2); pops: list of population labels per sample."""
    n_var, n_samp, _ = hap.shape
    pos = np.arange(1, n_var + 1) * 1000 if pos is None else np.asarray(pos)
    pops = np.array(pops if pops is not None else ["P1"] * n_samp)
    names = np.unique(pops)
    pop_idx = np.searchsorted(names, pops)
    af = hap.reshape(n_var, -1).mean(1)
    g = hap.sum(-1)
    with h5py.File(path, "w") as f:
        f.attrs.update(format_version=FORMAT_VERSION, contig=contig, source_vcf="test", min_maf=0.0,
                       type_names=TYPE_NAMES)
        f["variants/POS"] = pos.astype(np.int64)
        f["variants/REF"] = np.array([b"A"] * n_var, dtype="S1")
        f["variants/ALT"] = np.array([b"G"] * n_var, dtype="S1")
        f["variants/ID"] = np.array([b"."] * n_var)
        f["variants/TYPE"] = np.full(n_var, TYPE_NAMES.index("A>G"), np.int8)
        f["variants/AF"] = af.astype(np.float32)
        f["variants/AF_POP"] = np.stack([hap[:, pop_idx == k].reshape(n_var, -1).mean(1) for k in range(len(names))], 1).astype(np.float32)
        f["variants/GENO_FREQ"] = np.stack([(g == k).mean(1) for k in range(3)], 1).astype(np.float32)
        f["calldata/HAP"] = hap.astype(np.int8)
        f["samples/ID"] = np.array([f"S{i:03d}".encode() for i in range(n_samp)])
        f["samples/POP"] = pop_idx.astype(np.int16)
        f["samples/SUPER_POP"] = np.array([b"SP"] * n_samp)
        f["populations/NAME"] = np.array([n.encode() for n in names])
    return path
