#!/usr/bin/env bash
# The CUDA checks, in one go, on a machine with an NVIDIA GPU (on a CPU-only machine the CUDA parts skip):
#   1. the environment: nvidia-smi, torch / CUDA / cuDNN versions                      -> $OUT/env.txt
#   2. the CUDA tests (tests/test_cuda.py and every other test that uses device='cuda') -> $OUT/junit.xml
#   3. python -m benchmarks bench_cuda                                                  -> $OUT/bench-cuda.json
#   3b. the resident pretraining pass (issue 27 item 4: aim >= 1 M beats/s a phase at one track a step):
#      beatdbn pretrain --device cuda --resident on against --resident off on the same store, and the two
#      DBNs compared                                                                    -> $OUT/resident.txt
#   4. beatdbn reproduce --quick --device cuda on a synthetic corpus (600 tracks, 20 artists; the task
#      options of the Makefile's demo target)                                           -> $OUT/table.md, reproduce.json
#   5. the same with --scale auto (every task the corpus supports: on 600 tracks the demo options build only
#      the decade task)                                                                 -> $OUT/table-auto.md
# Every step is timed ($OUT/steps.tsv: step, exit status, seconds); the script goes on after a failed step and
# exits 1 if any failed. Run from anywhere:   OUT=/tmp/gpu bash scripts/gpu_check.sh 2>&1 | tee /tmp/gpu/log.txt
#
# Environment: OUT (default ./gpu-check-out), PY (python3), WORK (scratch, default /tmp/gpu-check),
# STORE (an existing feature store to use instead of synthesizing one), TRACKS (600), ARTISTS (20),
# TEST_TIMEOUT (300), BENCH_TIMEOUT (180), REPRO_TIMEOUT (300), RESIDENT_TIMEOUT (240) in seconds, STEPS (default
# "env tests bench resident reproduce reproduce-auto").
# Wheels in .whl/ (packages the machine's python lacks: dask, librosa, ...) are installed into $WORK/site first.
set -u -o pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=${OUT:-$ROOT/gpu-check-out}
PY=${PY:-python3}
WORK=${WORK:-/tmp/gpu-check}
TRACKS=${TRACKS:-600}
ARTISTS=${ARTISTS:-20}
STEPS=${STEPS:-env tests bench resident reproduce reproduce-auto}
mkdir -p "$OUT" "$WORK"
export PYTHONUNBUFFERED=1 MPLBACKEND=Agg
export PYTHONPATH="$ROOT/src:$ROOT${PYTHONPATH:+:$PYTHONPATH}"

if ! "$PY" -c 'import dask, distributed, librosa, soundfile, mir_eval' 2>/dev/null; then
    if compgen -G "$ROOT/.whl/*.whl" >/dev/null; then
        echo "installing $(ls "$ROOT"/.whl/*.whl | wc -l) wheels from .whl into $WORK/site"
        "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$WORK/site" \
            "$ROOT"/.whl/*.whl || { echo "wheel install failed"; exit 2; }
        export PYTHONPATH="$ROOT/src:$ROOT:$WORK/site${PYTHONPATH:+:$PYTHONPATH}"
    fi
fi

status=0
last_rc=0
printf 'step\texit\tseconds\n' > "$OUT/steps.tsv"
step() {  # step NAME TIMEOUT_S COMMAND...: run, time, record
    local name=$1 limit=$2; shift 2
    echo "=== [$name] $*"
    local t0 t1 rc
    t0=$(date +%s.%N)
    timeout --kill-after=10 "$limit" "$@"
    rc=$?
    t1=$(date +%s.%N)
    local dt
    dt=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
    [ $rc -eq 124 ] && echo "=== [$name] TIMED OUT after $limit s"
    echo "=== [$name] exit $rc, $dt s"
    printf '%s\t%s\t%s\n' "$name" "$rc" "$dt" >> "$OUT/steps.tsv"
    [ $rc -eq 0 ] || status=1
    last_rc=$rc
    return 0
}
wants() { case " $STEPS " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }

# -- 1. environment ------------------------------------------------------------------------------------------------
if wants env; then
    {
        date -u +%Y-%m-%dT%H:%M:%SZ
        nvidia-smi 2>&1 || echo "nvidia-smi: not available"
        "$PY" - <<'EOF'
import os, platform, torch
print(f"python {platform.python_version()}, torch {torch.__version__}, CUDA build {torch.version.cuda}, "
      f"cuDNN {torch.backends.cudnn.version()}, cuda available {torch.cuda.is_available()}, "
      f"CPUs {os.cpu_count()}, torch threads {torch.get_num_threads()}")
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    print(f"device 0: {p.name}, capability {p.major}.{p.minor}, {p.total_memory / 2**30:.0f} GiB, "
          f"{p.multi_processor_count} SMs; bf16 {torch.cuda.is_bf16_supported()}; "
          f"cudnn.allow_tf32 {torch.backends.cudnn.allow_tf32}, matmul.allow_tf32 "
          f"{torch.backends.cuda.matmul.allow_tf32}, float32 matmul precision {torch.get_float32_matmul_precision()}")
    # what TF32 does to a CRBM-shaped convolution (layer 1a, 32 x 512 beats) against fp32 on the CPU
    import torch.nn.functional as F
    g = torch.Generator().manual_seed(0)
    v, w = torch.rand(32, 12, 512, generator=g), torch.randn(100, 12, 8, generator=g) * 0.01
    ref = F.conv1d(v.double(), w.double())
    for tf32 in (True, False):
        torch.backends.cudnn.allow_tf32 = tf32
        err = (F.conv1d(v.cuda(), w.cuda()).double().cpu() - ref).abs().max() / ref.abs().max()
        print(f"conv1d on CUDA, cudnn.allow_tf32={tf32}: max error {float(err):.1e} of the largest output")
    torch.backends.cudnn.allow_tf32 = True
EOF
    } 2>&1 | tee "$OUT/env.txt"
fi

# -- the synthetic corpus (shared by the benchmark's pretraining pass and reproduce) -------------------------------
if wants bench || wants resident || wants reproduce || wants reproduce-auto; then
    if [ -z "${STORE:-}" ]; then
        STORE=$WORK/store
        if [ ! -f "$STORE/tracks.parquet" ]; then
            step synth 300 "$PY" -m beatdbn --progress-every 60 synth "$WORK/msd" --tracks "$TRACKS" --artists "$ARTISTS"
            step extract 300 "$PY" -m beatdbn --progress-every 60 extract "$WORK/msd" --out "$STORE" --scheduler sync
        fi
    fi
    echo "store: $STORE"
fi

# -- 2. the CUDA tests ----------------------------------------------------------------------------------------------
if wants tests; then
    step tests "${TEST_TIMEOUT:-300}" "$PY" -m pytest -q -rs -p no:cacheprovider --junitxml="$OUT/junit.xml" \
        tests/test_cuda.py tests/test_crbm.py tests/test_dbn.py tests/test_reliability.py \
        tests/test_pretrain_resident.py -k "cuda or wrong_device or bad_device"
    if [ "$last_rc" -ne 0 ]; then  # a failure: do the CPU-agreement tests pass with cuDNN's TF32 switched off?
        step tests-no-tf32 90 "$PY" -c 'import sys, torch, pytest
torch.backends.cudnn.allow_tf32 = False
sys.exit(pytest.main(["-q", "-rs", "-p", "no:cacheprovider", "tests/test_cuda.py", "tests/test_crbm.py",
                      "tests/test_dbn.py", "-k", "cuda and (match or loads_on_cpu or resumes)"]))'
    fi
fi

# -- 3. the benchmark -----------------------------------------------------------------------------------------------
if wants bench; then
    BEATDBN_BENCH_STORE=$STORE step bench "${BENCH_TIMEOUT:-180}" "$PY" -m benchmarks bench_cuda \
        --out "$OUT/bench-cuda.json"
fi

# -- 3b. the resident pass -----------------------------------------------------------------------------------------
if wants resident; then
    if "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
        for mode in on off; do  # one pass of the paper DBN over $STORE on CUDA, resident then streaming
            rm -rf "$WORK/dbn-$mode"
            step "resident-$mode" "${RESIDENT_TIMEOUT:-240}" "$PY" -m beatdbn pretrain "$STORE" \
                --out "$WORK/dbn-$mode" --device cuda --resident "$mode" --no-plots
        done
        if [ -f "$WORK/dbn-on/model.pt" ] && [ -f "$WORK/dbn-off/model.pt" ]; then
            "$PY" - "$WORK/dbn-on" "$WORK/dbn-off" <<'EOF' 2>&1 | tee "$OUT/resident.txt"
import json, sys, torch
on, off = (json.load(open(f"{d}/pretrain.json")) for d in sys.argv[1:])
for phase in on["phases"]:
    r, s = on["phases"][phase]["beats_per_s"], off["phases"][phase]["beats_per_s"]
    print(f"{phase}: resident {r:,.0f} beats/s, streaming {s:,.0f} beats/s ({r / s:.2f}x); 1 M beats/s "
          f"{'met' if r >= 1e6 else 'NOT met'}; {on['pass']['phases'][phase]}")
a, b = (torch.load(f"{d}/model.pt", weights_only=True) for d in sys.argv[1:])
worst = max(float((a[k].double() - b[k].double()).abs().max() / b[k].double().abs().max().clamp_min(1e-12))
            for k in a if a[k].is_floating_point())
print(f"resident vs streaming DBN on CUDA: largest difference {worst:.2e} of a tensor's largest value")
EOF
        fi
    else
        echo "no CUDA: the resident pass check skipped" | tee "$OUT/resident.txt"
    fi
fi

# -- 4./5. Table 1, quick, on CUDA ----------------------------------------------------------------------------------
DEVICE=cuda
"$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' || DEVICE=cpu
reproduce() {  # reproduce NAME TABLE_FILE [options...]
    local name=$1 table=$2; shift 2
    [ "$DEVICE" = cpu ] && echo "no CUDA: reproduce runs on the CPU (a dry run of this script)"
    rm -rf "$WORK/$name"
    step "$name-$DEVICE" "${REPRO_TIMEOUT:-300}" "$PY" -m beatdbn --progress-every 20 reproduce "$STORE" \
        --out "$WORK/$name" --quick --device "$DEVICE" "$@"
    [ -f "$WORK/$name/table.md" ] && cp "$WORK/$name/table.md" "$OUT/$table"
    [ -f "$WORK/$name/config.json" ] && "$PY" - "$WORK/$name/config.json" <<'EOF'
import json, sys
rec = json.load(open(sys.argv[1]))
t = rec.get("timings", {})
print("reproduce timings (s): " + ", ".join(f"{k} {v:.1f}" for k, v in t.items()) + f"; sum {sum(t.values()):.1f}")
EOF
    return 0
}
if wants reproduce; then
    reproduce reproduce table.md --artists 10 --per-artist 40 --per-genre 40 --per-key 60 --per-decade 60
    [ -f "$WORK/reproduce/config.json" ] && cp "$WORK/reproduce/config.json" "$OUT/reproduce.json"
fi
if wants reproduce-auto; then
    reproduce reproduce-auto table-auto.md --scale auto --artists 10 --per-artist 40 --per-genre 40 --per-key 60 \
        --per-decade 60
fi

echo "=== steps"
column -t "$OUT/steps.tsv" 2>/dev/null || cat "$OUT/steps.tsv"
exit $status
