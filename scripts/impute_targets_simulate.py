import sys

sys.stderr = open(snakemake.log[0], "w")
from omicslm.io.logs import setup_logging
from omicslm.impute.simulate import simulate_target_files, write_target_panel

setup_logging()
o, p = snakemake.output, snakemake.params
if snakemake.rule == "impute_targets_simulate_panel":  # the reference samples' populations
    write_target_panel(o.panel, populations=p.populations, super_populations=p.super_populations,
                       targets_per_population=p.targets_per_population)
else:  # one chromosome's reference panel, targets (unphased) and truth
    simulate_target_files(o.ref, o.targets, o.truth, **p.sim)
