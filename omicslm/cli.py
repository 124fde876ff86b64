"""``omicslm`` command line: the workflow's steps, callable by hand on your own files.

The Snakemake rules run the same functions through scripts/; this CLI is for trying a
step on a file, checking a config, or scripting outside Snakemake.
"""

from __future__ import annotations

import argparse
import json
import sys

from omicslm.io.logs import setup_logging


def _cmd_check_config(args):
    from omicslm.config import load_config

    cfg = load_config(*args.config)
    print(f"OK: {', '.join(args.config)} valid; sections: {', '.join(cfg)}")


def _cmd_simulate(args):
    from omicslm.config import load_config
    from omicslm.impute.simulate import simulate_panel

    sim = load_config(*args.config)["impute"]["simulate"]
    print(json.dumps(simulate_panel(args.vcf, args.panel, **sim)))


def _cmd_vcf_to_h5(args):
    from omicslm.impute.ingest import vcf_to_hdf5

    stats = vcf_to_hdf5(args.vcf, args.panel, args.h5, min_maf=args.min_maf, on_unphased=args.on_unphased,
                        chunk_size=args.chunk_size, panel_subset=args.panel_subset, indels=not args.snps_only)
    print(json.dumps(stats, default=str))


def _cmd_evaluate(args):
    from omicslm.impute.evaluate import evaluate_method

    df = evaluate_method(args.h5, args.split, args.array, args.vcf, args.runtime, args.out, method=args.method,
                         bins=args.bins, n_boot=args.bootstrap, seed=args.seed)
    print(df.to_string(index=False))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="omicslm",
        description="Steps of the omicslm workflow. Run the whole workflow with `snakemake --cores all`; "
        "use these subcommands to run one step on your own files.",
    )
    p.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    sub = p.add_subparsers(dest="command", required=True)

    c = sub.add_parser("check-config", help="validate config files (merged left to right) against the schema")
    c.add_argument("config", nargs="+", help="YAML files, e.g. config.yaml config/1kg_chr20.yaml")
    c.set_defaults(func=_cmd_check_config)

    s = sub.add_parser("simulate", help="simulate a 1000-Genomes-like panel (VCF + panel file) with stdpopsim")
    s.add_argument("--config", nargs="+", default=["config.yaml"], help="config files giving impute.simulate")
    s.add_argument("vcf", help="output bgzipped VCF")
    s.add_argument("panel", help="output panel file (sample pop super_pop gender)")
    s.set_defaults(func=_cmd_simulate)

    v = sub.add_parser("vcf-to-h5", help="ingest a phased VCF into the HDF5 layout (biallelic SNPs, MAF filter)")
    v.add_argument("vcf")
    v.add_argument("panel", help="1000 Genomes-style panel file: sample pop super_pop gender")
    v.add_argument("h5", help="output HDF5 (layout: omicslm.impute.layout)")
    v.add_argument("--min-maf", type=float, default=0.01)
    v.add_argument("--on-unphased", choices=["error", "drop_site"], default="error")
    v.add_argument("--chunk-size", type=int, default=2000)
    v.add_argument("--panel-subset", action="store_true", help="the panel may list samples the VCF lacks")
    v.add_argument("--snps-only", action="store_true", help="skip biallelic indels (kept by default)")
    v.set_defaults(func=_cmd_vcf_to_h5)

    e = sub.add_parser("evaluate", help="score an imputed VCF against the held-out truth by MAF bin")
    e.add_argument("h5")
    e.add_argument("split", help="split.tsv (sample pop super_pop role)")
    e.add_argument("array", help="array_sites.tsv (pos idx)")
    e.add_argument("vcf", help="imputed VCF with DS (or HDS/GT)")
    e.add_argument("runtime", help="runtime JSON of the method")
    e.add_argument("out", help="output TSV")
    e.add_argument("--method", required=True)
    e.add_argument("--bins", type=float, nargs="+", default=[0.0, 0.005, 0.01, 0.05, 0.5])
    e.add_argument("--bootstrap", type=int, default=200)
    e.add_argument("--seed", type=int, default=0)
    e.set_defaults(func=_cmd_evaluate)
    return p


def main(argv=None) -> int:
    """Run one subcommand; bad input (a file, a record, a config key) is one line on stderr and exit status 2."""
    import jsonschema

    from omicslm.errors import InputError

    args = build_parser().parse_args(argv)
    setup_logging(args.log_level)
    try:
        args.func(args)
    except InputError as exc:
        print(f"omicslm {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except jsonschema.ValidationError as exc:
        where = ".".join(str(p) for p in exc.absolute_path) or "(top level)"
        print(f"omicslm {args.command}: error: config {where}: {exc.message}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
