# r2 of the imputed targets along each chromosome (omicslm.impute.targets_plot): the untyped sites that
# impute_targets_evaluate scores, pooled in position bins, one line per method, the chunks' core edges dashed.
# Only where the targets have a truth (TARGETS_TRUTH). Include after impute_targets.smk.
R2_ALONG = IMPUTE_TARGETS["r2_along"]  # bin_kb, min_sites (config impute.targets.r2_along)


if TARGETS_TRUTH:
    rule impute_targets_plot:
        input:
            # method by method, chromosome by chromosome: the script pairs them with params methods x chroms
            vcfs=[f"results/imputed/{m}/{c}.vcf.gz" for m in TARGET_METHODS for c in TARGET_CHROMOSOMES],
            truth=impute_targets_per_chrom(impute_targets_truth),
            ref=impute_targets_per_chrom(impute_targets_reference),
            qc=[f"{TARGETS_DIR}/{c}/qc.tsv" for c in TARGET_CHROMOSOMES],
            chunks=[f"{TARGETS_DIR}/{c}/chunks.tsv" for c in TARGET_CHROMOSOMES],
        output:
            png=report("results/impute_targets_r2_along.png", caption="../report/impute_targets_r2_along.rst",
                       category="Imputation"),
            tsv="results/impute_targets_r2_along.tsv",
        params:
            made_with=impute_made_with("impute_targets_plot"),  # rerun key: read by no script (settings_above)
            methods=TARGET_METHODS,
            chroms=TARGET_CHROMOSOMES,
            bin_kb=R2_ALONG["bin_kb"],
            min_sites=R2_ALONG["min_sites"],
            snps_only=TARGETS_SNPS_ONLY,
        log:
            "logs/impute/targets_plot.log",
        conda:
            "../../envs/impute.yaml"
        script:
            "../../scripts/impute_targets_plot.py"
