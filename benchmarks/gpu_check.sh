#!/usr/bin/env bash
# One prepared GPU check (H100-class machine with torch, CuPy, numba-cuda and nvcc; no cuDF,
# no DuckDB, no network, no project install). By default, about 5 minutes:
#   kernels  the GPU kernels against the CPU kernels on 10M synthetic events, and their
#            throughput (data on the device; end to end from pageable and from pinned host
#            memory, whole and in overlapped chunks; H2D bandwidth; time by stage and by
#            kernel), then the host's cost of a kernel launch, a device read and an
#            allocation (benchmarks.launches --costs);
#   tests    the GPU test suite (every simulator test, run on the device, and the gpu-marked
#            ones);
#   engine   the whole engine on backend cuda against backend cpu on the same machine: the
#            sliding workload on 4M events (host frames prepared on the device, on the host,
#            and columns already on the device) and the full short-video config (sketches,
#            top-k, sessions, corrupt rows) on 400k, each again in batches of 1M rows, with
#            launches, waits and allocations per batch, a profile of the host's time, and
#            each workload's device time by kernel against its wall time.
# On request (or "all"), about 3 minutes each:
#   launch     Numba's own launch path (TIKTOKTOE_FAST_LAUNCH=0) against the default
#              (kernels/cuda/launcher.py): the host's cost of a launch and the smaller
#              engine comparison both ways, then the GPU kernels (compare with the kernels
#              step) and the GPU test suite through Numba's path;
#   memory     a smaller engine comparison and the cost of an allocation with Numba's stock
#              deferred frees (bursts of 11), the engine's default (bursts of 257) and the
#              opt-in pool (TIKTOKTOE_DEVICE_POOL=1, kernels/cuda/pool.py); then the GPU
#              kernels' runs with the data on the device (--device-only, five each on fresh
#              tables) without and with the pool: what allocations cost inside them;
#   tables     the GPU kernels (--device-only) with the blocks' shared tables of rows turned
#              off (TIKTOKTOE_BLOCK_TABLES=0: every event adds to global memory, as before the
#              tables), then with the tables counting in float64 rather than int32
#              (TIKTOKTOE_TILE_COUNTS=float64: compare-and-store loops, as before the int32
#              counts), then with agg.update_m2 compiled for 5 resident blocks
#              rather than 4 (TIKTOKTOE_LAUNCH_BOUNDS=1: fewer registers, no
#              spills); compare their times by kernel with the
#              kernels step's (about 3 minutes);
#   resources  the hot kernels' registers, shared memory and spills as nvJitLink assembles them
#              off the card (benchmarks/kernel_resources.py, which CI runs for every
#              kernel), beside the driver's own figures, and the occupancy calculator's
#              resident blocks against the driver's (under a minute);
#   profile    one 4M-event run with the data on the device under Nsight Compute (ncu,
#              when the machine has it and lets it read the counters): each kernel's
#              time, DRAM, L2 and SM throughput, occupancy, instructions executed, DRAM
#              bytes and what its warps waited on (benchmarks/ncu_summary.py; the CSV
#              comes back as $OUT/ncu.csv;
#              informational, 200 s at most);
#   optimizer  the optimizer's device check (informational).
# Arguments pick steps (kernels tests engine launch memory tables resources profile optimizer, or
# all). Each step has its own timeout and prints its seconds; "GPU_CHECK PASS" or
# "GPU_CHECK FAIL" comes last, and the exit status is 0 only on PASS. The device tool
# allows 600 s a call and 15 minutes a session with the machine's start included: run the
# default as one call (its timeouts add up to 570 s), then "tables resources profile" (545 s),
# then "memory" (370 s), then "launch" (540 s) while time is left (the H200's three calls
# took 206, 146 and 45 s). A preflight of a few seconds comes first in every call: if
# kernels fail with the defaults, the steps run
# with the first setting that passes it, of Numba's dispatcher (TIKTOKTOE_FAST_LAUNCH=0),
# no block tables (TIKTOKTOE_BLOCK_TABLES=0), no disk cache of compiled kernels
# (TIKTOKTOE_CUDA_KERNEL_CACHE=0) and none of them (the check fails; 30 s a try more).
#
# Python packages the machine lacks travel as wheels in .whl/, installed here when present:
# pydantic and its needs, and numpy < 2.5 (the image's numpy 2.5.2 breaks numba-cuda 0.30.4:
# no kernel compiles). Make them once, on the development machine (.whl/ is in .gitignore):
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#     --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
#     -d .whl numpy==2.4.6 pydantic==2.14.4 pydantic_core==2.50.5 annotated-types \
#     typing-inspection typing-extensions
# and pass carry=[".whl"] to the device run. Output is also written to $OUT/gpu_check.log.
set -u
cd "$(dirname "$0")/.."
if [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/gpu_check_site .whl/*.whl || exit 1
    export PYTHONPATH="/tmp/gpu_check_site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
unset NUMBA_ENABLE_CUDASIM
# Compiled kernels go to Numba's disk cache, so a later call on a warm machine loads them.
# kernels/cache_stamp.py renews an entry when any kernels/ source changes; the folder per
# content of all the sources keeps a run of another tree from replacing this one's entries.
SOURCES_HASH=$(find kernels gpu_engine benchmarks -name '*.py' | LC_ALL=C sort | xargs cat \
    | sha256sum | cut -c1-16)
export NUMBA_CACHE_DIR="${NUMBA_CACHE_DIR:-/tmp/tiktoktoe-numba-cache/$SOURCES_HASH}"
PY="${PYTHON:-python3}"
status=0
STEPS="${*:-kernels tests engine}"
[ "$STEPS" = all ] && STEPS="kernels tests engine launch memory tables resources profile optimizer"
want() { [[ " $STEPS " == *" $1 "* ]]; }
if [ -n "${OUT:-}" ]; then exec > >(tee "$OUT/gpu_check.log") 2>&1; fi
START=$SECONDS
step() { echo "== [$((SECONDS - START)) s] $*"; }

step "environment ($(date -u +%FT%TZ))"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || true
"$PY" - <<'PY' || status=1
import importlib.metadata as md
from numba import cuda
for name in ("numpy", "numba", "numba-cuda", "cupy-cuda13x", "pyarrow", "pandas", "torch",
             "pydantic"):
    try:
        print(f"{name} {md.version(name)}", end="; ")
    except md.PackageNotFoundError:
        print(f"{name} absent", end="; ")
print()
print("cuda available:", cuda.is_available())
if cuda.is_available():
    d = cuda.get_current_device()
    print("device:", d.name, "cc", d.compute_capability)
PY

step "preflight: a few kernels against the CPU, through the default launch path"
if ! timeout 30 "$PY" -m benchmarks.preflight; then
    # Every later step would fail the same way: find a setting that works (Numba's own
    # dispatcher, no block tables in the pane aggregation, no disk cache of compiled
    # kernels, or none of the three), run the steps with it, and fail the check (the
    # default is broken on this card).
    status=1
    found=""
    for setting in "TIKTOKTOE_FAST_LAUNCH=0" "TIKTOKTOE_BLOCK_TABLES=0" \
            "TIKTOKTOE_CUDA_KERNEL_CACHE=0" \
            "TIKTOKTOE_FAST_LAUNCH=0 TIKTOKTOE_BLOCK_TABLES=0 TIKTOKTOE_CUDA_KERNEL_CACHE=0"; do
        echo "PREFLIGHT failed: trying $setting"
        if env $setting timeout 30 "$PY" -m benchmarks.preflight; then
            found="$setting"
            break
        fi
    done
    if [ -n "$found" ]; then
        export $found
        echo "PREFLIGHT passed with $found: the steps below run with it"
    else
        echo "PREFLIGHT failed with every setting: the steps below run with the defaults"
    fi
fi

if want kernels; then
    step "GPU kernels vs CPU kernels, ${EVENTS:-10000000} events"
    timeout 150 "$PY" -m benchmarks.gpu_kernels --events "${EVENTS:-10000000}" || status=1
    step "host cost of a kernel launch, a device read and an allocation"
    timeout 40 "$PY" -m benchmarks.launches --costs || status=1
fi

if want tests; then
    step "GPU tests (pytest -m 'gpu or cudasim' tests/cuda, on the device)"
    # Device window emission, top-k, validation and the pinned uploads (copy stream, events),
    # whose overlap only a device exercises; about 70 kernels compile on first use.
    timeout 200 "$PY" -m pytest tests/cuda -m "gpu or cudasim" -q -p no:cacheprovider \
        -W default -o addopts="--strict-markers -ra" || status=1
fi

if want engine; then
    step "engine: backend cuda vs backend cpu"
    timeout 150 "$PY" -m benchmarks.gpu_engine --events "${ENGINE_EVENTS:-4000000}" \
        --full-events "${FULL_EVENTS:-400000}" --repeat 1 --cpu-workers 4 --profile 20 \
        --kernel-times 12 || status=1
fi

if want launch; then
    for fast in 0 1; do
        step "launches: TIKTOKTOE_FAST_LAUNCH=$fast"
        TIKTOKTOE_FAST_LAUNCH=$fast timeout 20 "$PY" -m benchmarks.launches --costs || status=1
        TIKTOKTOE_FAST_LAUNCH=$fast timeout 60 "$PY" -m benchmarks.gpu_engine --events 2000000 \
            --full-events 200000 --repeat 1 --large-batch 0 --cpu-workers 4 || status=1
    done
    step "GPU kernels with TIKTOKTOE_FAST_LAUNCH=0, ${EVENTS:-10000000} events"
    TIKTOKTOE_FAST_LAUNCH=0 timeout 150 "$PY" -m benchmarks.gpu_kernels \
        --events "${EVENTS:-10000000}" || status=1
    step "GPU tests with TIKTOKTOE_FAST_LAUNCH=0"
    TIKTOKTOE_FAST_LAUNCH=0 timeout 200 "$PY" -m pytest tests/cuda -m "gpu or cudasim" -q \
        -p no:cacheprovider -W default -o addopts="--strict-markers -ra" || status=1
fi

if want memory; then
    # Numba's stock frees (bursts of 11), the engine's default (bursts of 257), then the pool.
    for memory in "NUMBA_CUDA_MAX_PENDING_DEALLOCS_COUNT=10" "TIKTOKTOE_DEVICE_POOL=0" \
            "TIKTOKTOE_DEVICE_POOL=1"; do
        step "device memory: $memory"
        env "$memory" timeout 60 "$PY" -m benchmarks.gpu_engine --events 2000000 \
            --full-events 200000 --repeat 1 --large-batch 0 --cpu-workers 4 || status=1
        env "$memory" timeout 20 "$PY" -m benchmarks.launches --costs || status=1
    done
    # The kernels benchmark's runs with the data on the device, five each on fresh tables,
    # through Numba's allocator and through the pool: what allocations cost inside them.
    for memory in "TIKTOKTOE_DEVICE_POOL=0" "TIKTOKTOE_DEVICE_POOL=1"; do
        step "GPU kernels, data on the device only: $memory"
        env "$memory" timeout 90 "$PY" -m benchmarks.gpu_kernels --device-only --repeat 5 \
            --events "${EVENTS:-10000000}" || status=1
    done
fi

if want tables; then
    step "GPU kernels with TIKTOKTOE_BLOCK_TABLES=0, ${EVENTS:-10000000} events"
    TIKTOKTOE_BLOCK_TABLES=0 timeout 90 "$PY" -m benchmarks.gpu_kernels --device-only \
        --events "${EVENTS:-10000000}" || status=1
    step "GPU kernels with TIKTOKTOE_TILE_COUNTS=float64 (agg.update's tables: loops)"
    TIKTOKTOE_TILE_COUNTS=float64 timeout 90 "$PY" -m benchmarks.gpu_kernels --device-only \
        --events "${EVENTS:-10000000}" || status=1
    step "GPU kernels with TIKTOKTOE_LAUNCH_BOUNDS=1 (agg.update_m2: more blocks)"
    TIKTOKTOE_LAUNCH_BOUNDS=1 timeout 90 "$PY" -m benchmarks.gpu_kernels --device-only \
        --events "${EVENTS:-10000000}" || status=1
fi

if want resources; then
    step "kernel resources: assembled here (nvJitLink) against the driver's, and occupancy"
    # The hot kernels' registers, shared memory and spills as ptxas gives them off the card
    # (what CI checks), beside the driver's own figures, and the occupancy calculator's
    # blocks against cuOccupancyMaxActiveBlocksPerMultiprocessor's.
    timeout 45 "$PY" -m benchmarks.kernel_resources --device \
        --only agg. hash. validate. sketch. ingest.pane_keys fill || status=1
fi

if want profile; then
    step "hardware counters of one ${PROFILE_EVENTS:-4000000}-event run, by kernel (ncu, informational)"
    # One checked run with the data on the device between cuProfilerStart and Stop, under
    # Nsight Compute with the clocks left alone; the CSV comes back in $OUT (ncu.csv).
    # 4M events rather than 10M: ncu replays each kernel once per pass, saving and
    # restoring the device memory it may write, and a step killed by its timeout leaves
    # no CSV.
    NCU=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | tail -1)
    CSV="${OUT:-/tmp}/ncu.csv"
    if [ -z "$NCU" ]; then
        echo "(no ncu on this machine; not counted)"
    elif timeout 200 "$NCU" --profile-from-start off --clock-control none \
            --print-kernel-base mangled --print-units base --csv --page raw \
            --metrics "$("$PY" -m benchmarks.ncu_summary --metrics)" \
            --section WarpStateStats --log-file "$CSV" \
            "$PY" -m benchmarks.gpu_kernels --profile-only --events "${PROFILE_EVENTS:-4000000}"; then
        "$PY" -m benchmarks.ncu_summary "$CSV" || echo "(ncu_summary failed; not counted)"
    else
        tail -5 "$CSV" 2>/dev/null
        echo "(ncu failed; not counted)"
    fi
fi

if want optimizer; then
    step "optimizer device check (informational)"
    timeout 40 "$PY" -m gpu_engine.optimizer.device_check --instances 64 \
        || echo "(device_check failed; not counted)"
fi

step "done"
if [ "$status" -eq 0 ]; then echo "GPU_CHECK PASS"; else echo "GPU_CHECK FAIL"; fi
exit "$status"
