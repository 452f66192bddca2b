# The project image the Kubeflow tasks run in: each task is `kedro run --nodes ...` in /app.
#
#   CPU build (default):  docker build -t yolo-mlops:0.1.0 .
#   CUDA build:           docker build --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128 \
#                             -t yolo-mlops:0.1.0-cuda .
#
# Data lives on a volume mounted at /app/data (the catalog's relative `data/...` paths).
FROM python:3.11-slim

# Which PyTorch build: the CPU wheels by default; a CUDA wheel index for GPU nodes.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG TORCH_VERSION=2.14.1
ARG TORCHVISION_VERSION=0.29.1

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    KEDRO_DISABLE_TELEMETRY=true \
    DO_NOT_TRACK=1 \
    MLFLOW_DISABLE_TELEMETRY=true \
    MLFLOW_SKIP_PIP_REQUIREMENTS_CHECK=true \
    DVC_NO_ANALYTICS=1

WORKDIR /app

# torch first, from the chosen wheel index; `pip install .` then finds it already satisfied.
RUN pip install --index-url "${TORCH_INDEX_URL}" \
        "torch==${TORCH_VERSION}" "torchvision==${TORCHVISION_VERSION}"

# The project from its own files (the package is installed, not edited: no -e).
COPY pyproject.toml README.md ./
COPY src/ src/
RUN pip install . && python -c "import yolo_mlops.kubeflow.task, kedro, mlflow, torch"

COPY conf/ conf/

# Non-root user; data/ is where the PVC is mounted (give the pod fsGroup 1000 so it can write).
RUN useradd --create-home --uid 1000 --user-group app \
    && mkdir -p data conf/local \
    && chown -R app:app /app
USER app

# Kubeflow tasks override this with `python -m yolo_mlops.kubeflow.task ...`.
CMD ["kedro", "run", "--env", "ci"]
