#!/usr/bin/env bash
# The GPU checks of the training-speed work as one short script, for a GPU machine that has
# torch, torchvision, opencv, numpy, pandas, pillow, pyyaml, matplotlib, tqdm and pytest but no
# network (such as the `device` tool's; design §12):
#   1. the CUDA tests (tests/yolo/train/test_cuda.py and the loss on CUDA), skipped elsewhere;
#   2. the GPU row of the training-speed benchmark (benchmarks/train_throughput_gpu.py): yolo11n
#      at 640, batch 16 and 64, float16 AMP eager and compiled.
# Logs and JSON go to $OUT (default /tmp/gpu_check); each part has its own time limit so that the
# whole script ends within about 9 minutes.
#
# Prepare on a machine with the project's venv and the package registry, once (the folder
# .gpu_check/ is ignored by git):
#     bash benchmarks/gpu_check.sh prepare      # COCO128 archive + the wheels the GPU lacks
# then run there from the repository root, carrying .gpu_check:
#     bash benchmarks/gpu_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
STAGE=.gpu_check

if [ "${1:-}" = "prepare" ]; then
    set -e
    mkdir -p "$STAGE/wheels"
    cp -f "${COCO128_ZIP:-../shared/data/coco128.zip}" "$STAGE/coco128.zip"
    # The benchmark builds its image cache through the preprocessing node, whose package imports
    # kedro.pipeline (which needs more-itertools); everything else is on the GPU machine.
    versions=$(.venv/bin/python -c "from importlib.metadata import version as v; \
print(f'kedro=={v(\"kedro\")} more-itertools=={v(\"more-itertools\")}')")
    # shellcheck disable=SC2086
    .venv/bin/python -m pip download --quiet --no-deps --only-binary=:all: -d "$STAGE/wheels" \
        $versions
    du -sh "$STAGE"
    exit 0
fi

OUT=${OUT:-/tmp/gpu_check}
mkdir -p "$OUT"
export KEDRO_DISABLE_TELEMETRY=true DO_NOT_TRACK=1 MLFLOW_DISABLE_TELEMETRY=true \
       DVC_NO_ANALYTICS=1 PYTHONUNBUFFERED=1
PYTHON=${PYTHON:-python3}
if [ ! -f "$STAGE/coco128.zip" ]; then
    echo "no $STAGE/coco128.zip: run 'bash benchmarks/gpu_check.sh prepare' first" >&2
    exit 2
fi
"$PYTHON" -m pip install --quiet --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/gpu_check_site "$STAGE"/wheels/*.whl || exit 2
export PYTHONPATH="$PWD/src:/tmp/gpu_check_site${PYTHONPATH:+:$PYTHONPATH}"
nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1 || true

echo "== CUDA tests"
# pyproject's filterwarnings names a pydantic class the GPU machine may lack; no third-party
# pytest plugins (the machine's own could need packages it lacks); coreutils' timeout bounds it.
PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 timeout 240 "$PYTHON" -m pytest -o filterwarnings= -p no:cacheprovider -q -rs \
    tests/yolo/train/test_cuda.py \
    tests/yolo/train/test_loss.py::test_loss_runs_on_cuda_and_matches_cpu \
    2>&1 | tee "$OUT/cuda_tests.log"
tests=${PIPESTATUS[0]}

echo "== GPU training throughput (640, batch 16 and 64, AMP eager and compiled)"
timeout 300 "$PYTHON" benchmarks/train_throughput_gpu.py --zip "$STAGE/coco128.zip" \
    --imgsz 640 --batch 16 64 --modes amp amp_compiled --epochs 5 \
    --out "$OUT/train_throughput_gpu.json" 2>&1 | tee "$OUT/train_throughput_gpu.log"
bench=${PIPESTATUS[0]}

echo "== exit codes: tests $tests, benchmark $bench"
[ "$tests" -eq 0 ] && [ "$bench" -eq 0 ]
