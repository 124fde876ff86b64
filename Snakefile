# omicslm: raw genomic and text data -> trained transformers -> honest evaluation reports.
# Usage: snakemake --cores all                      (default config.yaml: tiny, CPU, minutes)
#        snakemake --cores 32 --configfile config/1kg_chr20.yaml results/impute_eval.tsv
import os

from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "config.yaml"


# defaults of optional keys live in the schema: the rules read config[...] directly
validate(config, schema="workflow/schemas/config.schema.yaml", set_default=True)


# a data path of config that does not exist is named before any job runs
from omicslm.config import missing_paths

if missing_paths(config):
    raise ValueError("config names files that do not exist (relative to the working directory "
                     f"{os.getcwd()}):\n  " + "\n  ".join(missing_paths(config)))


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/impute_common.smk"
include: "workflow/rules/impute.smk"
include: "workflow/rules/impute_model.smk"
include: "workflow/rules/impute_targets.smk"
include: "workflow/rules/impute_targets_train.smk"
include: "workflow/rules/impute_targets_plot.smk"
include: "workflow/rules/crispr.smk"
include: "workflow/rules/textlm_common.smk"
include: "workflow/rules/textlm.smk"
include: "workflow/rules/scrna.smk"


rule all:
    input:
        rules.impute_all.input,
        rules.impute_model_all.input,
        rules.impute_targets_all.input,
        rules.crispr_all.input,
        rules.textlm_all.input,
        rules.scrna_all.input,
    default_target: True
