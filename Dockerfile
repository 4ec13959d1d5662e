# The image that cluster/kuberay-rayjob.yaml (and cluster/aws.yaml, instead of the bare Ray
# image) names: Ray at the project's pin, with raypipe and its configs installed.
#
#   docker build -t ghcr.io/<you>/raypipe:latest .
#   docker build --build-arg BASE=rayproject/ray:2.60.0-py311-gpu \
#                --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu128 -t ghcr.io/<you>/raypipe:latest-gpu .
#   docker push ghcr.io/<you>/raypipe:latest && docker push ghcr.io/<you>/raypipe:latest-gpu
#
# then put those names in cluster/kuberay-rayjob.yaml (image:) or cluster/aws.yaml (docker:).
ARG BASE=rayproject/ray:2.60.0-py311-cpu
FROM ${BASE}
# CPU wheels of torch by default (the CUDA ones are ~2 GB a layer that a CPU node never uses).
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
WORKDIR /home/ray/raypipe
COPY --chown=ray:users pyproject.toml README.md ./
COPY --chown=ray:users raypipe ./raypipe
RUN pip install --no-cache-dir --extra-index-url "${TORCH_INDEX}" . \
 && python -m raypipe --help > /dev/null \
 && python -c "import raypipe.engine.driver, raypipe.detection.clip"
WORKDIR /home/ray
