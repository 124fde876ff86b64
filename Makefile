# Two commands (see README): `make run` and `make test`. Both set everything up first.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
CORES  ?= all

.PHONY: setup system-tools slurm-tools run test test-fast lint clean

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
	$(BIN)/snakemake --cores $(CORES) impute_all impute_model_all

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
