#!/usr/bin/env bash
# The device check of issue 15, as ONE script for a lent GPU machine (shared/gpu-machine.md): installs the
# wheels it lacks from DIR (made here by tests/gpu/prepare_wheels.sh and carried), then runs
#   1. the gpu-marked tests                                   -> $OUT/gpu-tests.xml, gpu-tests.log
#   2. greenbench run llama-1b, batch sweep 1/16/64 (torch)    -> $OUT/results/llama-1b-*.json
#   3. greenbench run llama-1b-train (--backend cuda, bf16)    -> $OUT/results/llama-1b-train-*.json
#   4. the decode benchmark: greenbench vs HF generate        -> $OUT/bench_decode.json
#   5. (if time is left) the benchmark with torch.compile     -> $OUT/bench_decode_compile.json
# and writes the figures the issue note needs to $OUT/device_check.json (tests/gpu/summarize.py). Each step
# has its own timeout, and a failed step does not stop the others; the whole check stays under 8 minutes.
#
# On the lent machine:  bash tests/gpu/device_check.sh .gpu-wheels          (with carry=[".gpu-wheels"])
# Smoke test on a CPU:  GB_CHECK_DEVICE=cpu GB_CHECK_PROFILE=llama-tiny GB_CHECK_TRAIN=llama-tiny-train \
#                       OUT=/tmp/out bash tests/gpu/device_check.sh
set -uo pipefail
cd "$(dirname "$0")/../.."
WHEELS=${1:-}
OUT=${OUT:-$(mktemp -d)}
mkdir -p "$OUT"
DEVICE=${GB_CHECK_DEVICE:-cuda}
PROFILE=${GB_CHECK_PROFILE:-llama-1b}
TRAIN=${GB_CHECK_TRAIN:-llama-1b-train}
BUDGET_S=${GB_CHECK_BUDGET_S:-450}   # 7.5 minutes for everything
PY=${PYTHON:-python3}
START=$SECONDS
log() { echo "[device_check +$((SECONDS - START))s] $*" | tee -a "$OUT/device_check.log"; }
left() { echo $((BUDGET_S - (SECONDS - START))); }
STEPS="$OUT/steps.tsv"
: > "$STEPS"
step() {  # step NAME TIMEOUT_S CMD...: run with a timeout, record rc and seconds
  local name=$1 limit=$2; shift 2
  local l; l=$(left)
  if [ "$l" -lt 20 ]; then log "skip $name: $l s left"; printf '%s\tskipped\t0\n' "$name" >> "$STEPS"; return; fi
  [ "$limit" -gt "$((l - 10))" ] && limit=$((l - 10))
  log "start $name (timeout ${limit}s)"
  local t0=$SECONDS
  # SIGINT first: greenbench run keeps the repeats it finished (a partial result), as on Ctrl-C
  if [ "$1" = greenbench ]; then  # timeout runs programs, not shell functions
    shift
    set -- $PY -c 'import sys; from greenbench.cli import main; sys.argv[0] = "greenbench"; sys.exit(main())' "$@"
  fi
  timeout --signal=INT --kill-after=15 "$limit" "$@" > "$OUT/$name.log" 2>&1
  local rc=$?
  printf '%s\t%s\t%s\n' "$name" "$rc" "$((SECONDS - t0))" >> "$STEPS"
  log "end $name rc=$rc in $((SECONDS - t0))s"
  tail -n 5 "$OUT/$name.log" | sed 's/^/    /' | tee -a "$OUT/device_check.log"
}

if [ -n "$WHEELS" ]; then
  SITE=$(mktemp -d)
  log "installing $(ls "$WHEELS"/*.whl | wc -l) carried wheels into $SITE"
  $PY -m pip install -q --no-index --no-deps --target "$SITE" "$WHEELS"/*.whl >> "$OUT/device_check.log" 2>&1 \
    || log "pip install failed (see device_check.log)"
  export PATH="$SITE/bin:$PATH"
  export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
fi
# greenbench from this checkout, whatever is installed (so the check always runs the code it was carried with)
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export GREENBENCH_CACHE_DIR=${GREENBENCH_CACHE_DIR:-$(mktemp -d)}
export GREENBENCH_CONFIG_DIR=${GREENBENCH_CONFIG_DIR:-$(mktemp -d)}
{
  $PY -c "import sys, torch; print('python', sys.version.split()[0]); print('torch', torch.__version__, 'cuda', torch.version.cuda, 'available', torch.cuda.is_available()); print('device', torch.cuda.get_device_name() if torch.cuda.is_available() else 'cpu')"
  $PY -c "import transformers; print('transformers', transformers.__version__)" 2>&1 | tail -1
  $PY -c "import greenbench; print('greenbench', greenbench.__version__, greenbench.__file__)"
  nvidia-smi --query-gpu=name,uuid,driver_version,power.draw --format=csv 2>&1 | head -3
} > "$OUT/versions.txt" 2>&1
cat "$OUT/versions.txt" | tee -a "$OUT/device_check.log"

step gpu-tests 120 $PY -m pytest -q -m gpu -p no:cacheprovider --junitxml="$OUT/gpu-tests.xml" \
  tests/test_torch_backend.py tests/test_training.py tests/test_backends.py tests/test_meters_nvml.py
# GPU energy only (--meter nvml: the NVML counter, method counter), as shared/gpu-machine.md measured it; the
# host CPU has no RAPL there and would only add an estimate.
METER=$([ "$DEVICE" = cuda ] && echo nvml || echo estimate)
step run-decode 180 greenbench run "$PROFILE" --backend torch --device "$DEVICE" --batch 1 --batch 16 --batch 64 \
  --repeats 3 --warmup 1 --meter "$METER" --region FRA --out "$OUT/results"
step run-train 120 greenbench run "$TRAIN" --backend "$([ "$DEVICE" = cuda ] && echo cuda || echo torch)" \
  --repeats 3 --warmup 1 --meter "$METER" --region FRA --out "$OUT/results"
step bench_decode 150 $PY tests/benchmarks/bench_decode.py --device "$DEVICE" --profiles "$PROFILE" \
  --batch 1 16 --rounds 3 --tokens 64 --eager --json "$OUT/bench_decode.json"
if [ "$(left)" -gt 120 ]; then
  step bench_decode_compile "$(( $(left) - 15 ))" $PY tests/benchmarks/bench_decode.py --device "$DEVICE" \
    --profiles "$PROFILE" --batch 1 --rounds 3 --tokens 64 --no-hf --compile default \
    --json "$OUT/bench_decode_compile.json"
fi
$PY tests/gpu/summarize.py "$OUT" > "$OUT/device_check.json" 2> "$OUT/summarize.log" \
  || log "summarize failed: $(tail -n 3 "$OUT/summarize.log")"
log "done in $((SECONDS - START)) s; figures in $OUT/device_check.json"
cat "$OUT/device_check.json"
