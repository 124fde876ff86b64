"""config/scale.yaml (the speed benchmark's production-like preset) validates and plans its DAG.

It is never run here (its simulation alone takes tens of minutes): the dry run shows it plans the held-out
evaluation and the chunked target imputation of a whole 30 Mb segment.
"""

import pytest

from tests.workflow.conftest import ROOT, planned_jobs, snakemake

pytestmark = pytest.mark.workflow


def test_scale_preset_plans_the_evaluation_and_the_chunked_targets(tmp_path):
    res = snakemake(tmp_path, "-n", "--", "impute_all", "impute_targets_all", configs=[ROOT / "config/scale.yaml"],
                    timeout=300)
    jobs = planned_jobs(res)
    assert {"impute_simulate", "impute_train", "impute_targets_chunks", "impute_targets_phase"} <= set(jobs), jobs
    assert "chr20" in res.stdout + res.stderr
