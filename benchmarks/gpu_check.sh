#!/usr/bin/env bash
# Prove the GPU path (issue 21): set a bare machine up from the project's own files, then run the
# checks of benchmarks/gpu_check.py one step at a time, each under its own time limit, and print
# the TSV of what they measured. Run `bash benchmarks/gpu_check.sh --help` for the details.
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: bash benchmarks/gpu_check.sh [--cpu-smoke] [--out DIR] [--cores N] [--impute-results DIR]

Proves the workflow's GPU path on one GPU (designed for < 8 min on one H100/H200) and writes
DIR/gpu_check.tsv (columns: step, metric, value, unit, note), which it prints at the end.

Modes
  (default)     GPU machine, full size. Steps needing CUDA fail (with the reason) without it.
  --cpu-smoke   The same steps at toy size on CPU (< 3 min on 2 cores): what the test suite runs.

Options
  --out DIR             where the TSV, logs/, work/ (Snakemake work dirs), data/ and configs/ go
                        (default: $OUT when set, else results/gpu_check); it must be new, empty
                        or an earlier run's (whose outputs are then removed)
  --cores N             cores for Snakemake and the benchmarks (default: all, nproc)
  --impute-results DIR  step b: time a finished run's results/impute (e.g. config/1kg_chr20.yaml's)
                        instead of step a's tiny one
  -h, --help            this text

The limits add up to 470 s (GPU) and 270 s (smoke, where a run takes ~75 s on 2 cores). Setup
(before the steps, not counted): reuses .venv when it imports omicslm, torch and snakemake; otherwise
runs `make setup` (venv from requirements.lock, Debian tools via scripts/install_system_tools.sh).
The system tools (Beagle, bcftools, tabix, minimac4, Java) are checked in any case. No step needs
the network: the inputs the default config fetches from PyPI are replaced by synthetic ones.

Steps (time limit GPU / smoke, via `timeout`; a failed or timed-out step is recorded as
status=failed with its reason, and the later steps still run)
  setup                torch, its CUDA build, the GPU, cores                       (30 s / 30 s)
  a_correctness        the tiny default config's training rules of every branch    (200 s / 100 s)
                       (impute_train, crispr_pretrain, crispr_train, scrna_train, textlm_train) through
                       Snakemake, once with every device key set to cpu and once to cuda, in separate
                       work dirs at the same time; their validation metrics must agree within
                       |cuda - cpu| <= 0.05 + 0.10 x |cpu| (smoke: CPU pass only, comparison skipped)
  a_resume             crispr_train SIGKILLed after its first checkpoint, rerun    (90 s / 80 s)
                       with --rerun-incomplete: must log "resuming ..." and end as an uninterrupted run
  b_impute_speed       benchmarks/impute_speed.py (--gpu) on step a's imputation   (60 s / 30 s)
                       run: genotypes/s of ours (CPU, CUDA) vs Beagle 5.4
  c_textlm_throughput  GPT-2 124M (12 x 768, block 1024, bf16) tokens/s through    (90 s / 30 s)
                       the workflow's Trainer setup, beside llm.c's ~460k tokens/s on one H100
                       (smoke: 2 layers x 64, block 128, a few steps)
  d_peak_gpu_memory    peak GPU memory of each step (torch.cuda.max_memory_allocated in-process,
                       else nvidia-smi samples), gathered from the rows above
Exit status: 0 when no step failed, 1 otherwise.
EOF
}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MODE=gpu
OUT_DIR=${OUT:-results/gpu_check}
CORES=$(nproc)
EXTRA=()
while [ $# -gt 0 ]; do
    case $1 in
        --cpu-smoke) MODE=smoke ;;
        --out) OUT_DIR=${2:?--out needs a directory}; shift ;;
        --out=*) OUT_DIR=${1#--out=} ;;
        --cores) CORES=${2:?--cores needs a number}; shift ;;
        --cores=*) CORES=${1#--cores=} ;;
        --impute-results) EXTRA+=(--impute-results "$(cd "${2:?--impute-results needs a directory}" && pwd)"); shift ;;
        -h | --help) usage; exit 0 ;;
        *) echo "gpu_check.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
    esac
    shift
done

cd "$ROOT"
mkdir -p "$OUT_DIR"
OUT_DIR=$(cd "$OUT_DIR" && pwd)
if [ -n "$(ls -A "$OUT_DIR")" ] && [ ! -f "$OUT_DIR/.gpu_check" ]; then
    echo "gpu_check.sh: $OUT_DIR is neither empty nor an earlier gpu_check run's; choose another --out" >&2
    exit 2
fi
# a fresh run: what an earlier run left here would make Snakemake skip the training
rm -rf "$OUT_DIR/rows" "$OUT_DIR/work" "$OUT_DIR/logs" "$OUT_DIR/configs" "$OUT_DIR/data" "$OUT_DIR/gpu_check.tsv"
mkdir -p "$OUT_DIR/rows" "$OUT_DIR/logs"
echo "made by benchmarks/gpu_check.sh: the next run here removes rows/ work/ logs/ configs/ data/" >"$OUT_DIR/.gpu_check"

if [ "$MODE" = smoke ]; then
    EXTRA+=(--smoke)
    LIMIT_SETUP=30 LIMIT_A=100 LIMIT_RESUME=80 LIMIT_B=30 LIMIT_C=30 LIMIT_MAKE=900
else
    LIMIT_SETUP=30 LIMIT_A=200 LIMIT_RESUME=90 LIMIT_B=60 LIMIT_C=90 LIMIT_MAKE=900
fi
STEPS=(setup a_correctness a_resume b_impute_speed c_textlm_throughput)

# one TSV row of a step, written and shown at once (tabs and newlines in the note become spaces)
row() {
    local note=${5//$'\t'/ }
    note=${note//$'\n'/ }
    printf '%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "$note" >>"$OUT_DIR/rows/$1.tsv"
    echo "[$1] $2 = $3 $4${note:+  ($note)}"
}

has_status() { [ -f "$OUT_DIR/rows/$1.tsv" ] && cut -f2 "$OUT_DIR/rows/$1.tsv" | grep -qx status; }

echo "== setup: mode $MODE, out $OUT_DIR, $CORES cores =="
PY="$ROOT/.venv/bin/python"
venv_ok() { [ -x "$PY" ] && "$PY" -c "import omicslm, torch, snakemake" >/dev/null 2>&1; }
start=$SECONDS
if venv_ok; then
    row setup venv reused "" "$ROOT/.venv imports omicslm, torch, snakemake; make setup not run"
elif timeout "$LIMIT_MAKE" make setup >"$OUT_DIR/logs/make_setup.log" 2>&1 && venv_ok; then
    row setup venv installed "" "make setup (requirements.lock), $((SECONDS - start)) s"
else
    row setup venv failed "" "no usable .venv and make setup failed: $(tail -n 3 "$OUT_DIR/logs/make_setup.log" 2>/dev/null)"
fi
# Beagle & co. for step b and the imputation rules; a no-op when present, needs apt (and root) otherwise
if timeout 600 bash scripts/install_system_tools.sh >"$OUT_DIR/logs/system_tools.log" 2>&1; then
    row setup system_tools present "" "$(tail -n 1 "$OUT_DIR/logs/system_tools.log")"
else
    row setup system_tools missing "" "$(grep -m1 missing "$OUT_DIR/logs/system_tools.log" || tail -n 1 "$OUT_DIR/logs/system_tools.log")"
fi

if ! venv_ok; then
    # nothing below can run: every step says why, and the TSV is still written
    for step in "${STEPS[@]}" d_peak_gpu_memory; do
        has_status "$step" || row "$step" status failed "" "no usable .venv (see $OUT_DIR/logs/make_setup.log)"
    done
    {
        printf 'step\tmetric\tvalue\tunit\tnote\n'
        for step in "${STEPS[@]}" d_peak_gpu_memory; do cat "$OUT_DIR/rows/$step.tsv"; done
    } >"$OUT_DIR/gpu_check.tsv"
    cat "$OUT_DIR/gpu_check.tsv"
    exit 1
fi

run_step() {
    local step=$1 limit=$2 rc=0 t0=$SECONDS
    echo "== $step (limit ${limit} s) =="
    timeout --kill-after=15 "$limit" "$PY" benchmarks/gpu_check.py "$step" --out "$OUT_DIR" --cores "$CORES" \
        --time-limit "$limit" "${EXTRA[@]}" || rc=$?
    if [ "$rc" -ne 0 ] && ! has_status "$step"; then
        if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
            row "$step" status failed "" "killed at its time limit (${limit} s)"
        else
            row "$step" status failed "" "exit $rc (see the output above)"
        fi
    fi
    row "$step" step_seconds "$((SECONDS - t0))" s "wall time, limit ${limit} s"
}

run_step setup "$LIMIT_SETUP"
run_step a_correctness "$LIMIT_A"
run_step a_resume "$LIMIT_RESUME"
run_step b_impute_speed "$LIMIT_B"
run_step c_textlm_throughput "$LIMIT_C"

echo "== $OUT_DIR/gpu_check.tsv =="
"$PY" benchmarks/gpu_check.py report --out "$OUT_DIR"
