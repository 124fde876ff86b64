# Two commands (see README): `make run` and `make test`. Both set everything up first.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
CORES  ?= all
# the main job: the held-out evaluation, the models, and the targets imputed per chromosome
MAIN_JOB := impute_all impute_model_all impute_targets_all

.PHONY: setup system-tools slurm-tools run report test test-fast lint clean

setup: $(VENV)/.installed system-tools

# Pinned Python packages (requirements.lock is the full, frozen set; pyproject.toml pins the direct ones).
$(VENV)/.installed: pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -r requirements.lock
	$(BIN)/python -m pip install -q --no-deps -e .
	touch $@

# Debian packages: bcftools, tabix, beagle, minimac4, a headless JRE (no-op when present).
system-tools:
	bash scripts/install_system_tools.sh

run: setup
	$(BIN)/snakemake --cores $(CORES) $(MAIN_JOB)

# The Snakemake report of what `make run` made (plain `snakemake --report` follows rule all: every branch).
report: setup
	$(BIN)/snakemake --report report.html $(MAIN_JOB)

# A single-node SLURM for tests/workflow/test_slurm.py (slurm-wlm, munge, slurmdbd, MariaDB). Without root
# or apt the script says so and exits 0, and that test skips with the reason: never fails the build.
slurm-tools:
	-bash scripts/install_slurm.sh

test: setup slurm-tools
	$(BIN)/python -m pytest -q -rs --durations=15

# Unit tests only (no Snakemake runs, no SLURM): the quick loop while changing omicslm/ (a few minutes on 2 cores).
test-fast: setup
	$(BIN)/python -m pytest -q -rs -m "not workflow" --ignore=tests/workflow --durations=10

lint: setup
	$(BIN)/snakemake --lint

clean:
	rm -rf results resources logs .snakemake report.html
