# The warmcv image: one LightGBM image for SageMaker training (worker and coordinator modes), Processing
# (`prepare`) and batch transform / endpoints (`serve`). See docs/image.md.
#
#   docker build -t warmcv .                                  (python:3.11-slim-bookworm base)
#   docker build --build-arg BASE_IMAGE=<a Python 3.11 Debian image> -t warmcv .
#
# Versions: pyproject.toml says which ranges warmcv supports, constraints.txt which versions were tested;
# every pip install here takes the latter (-c for packages, --build-constraint for the build's setuptools).
ARG BASE_IMAGE=python:3.11-slim-bookworm

# ---- build stage: compilers live here only (sagemaker-training builds a C extension from its sdist)
FROM ${BASE_IMAGE} AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python3 -m venv /opt/venv
WORKDIR /src
# Dependencies first, from pyproject.toml and constraints.txt alone, so that a code change rebuilds in
# seconds: an empty package stands in for the code until the real one is copied below. The base image's
# pip is upgraded (to the pinned version) first: older ones have no --build-constraint.
COPY pyproject.toml README.md constraints.txt ./
RUN mkdir -p container_src/warmcv && touch container_src/warmcv/__init__.py \
 && /opt/venv/bin/pip install -c constraints.txt --upgrade pip \
 && /opt/venv/bin/pip install -c constraints.txt --build-constraint constraints.txt ".[container]" \
 && /opt/venv/bin/pip uninstall -y warmcv \
 && rm -rf build container_src
COPY container_src ./container_src
RUN /opt/venv/bin/pip install -c constraints.txt --build-constraint constraints.txt --no-deps . \
 # Third-party test suites are not needed at run time (about 120 MB).
 && for pkg in numpy pandas pyarrow scipy sklearn; do \
      find "/opt/venv/lib/python3.11/site-packages/$pkg" -type d -name tests -prune -exec rm -rf {} +; \
    done \
 && /opt/venv/bin/python -c "import warmcv.cli, warmcv.serving.app, sagemaker_training, lightgbm"

# ---- runtime stage: the base image, LightGBM's OpenMP runtime, the virtualenv, the entrypoint
FROM ${BASE_IMAGE}
RUN apt-get update \
 && apt-get install -y --no-install-recommends libgomp1 \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin
COPY --from=build /opt/venv /opt/venv
COPY docker/entrypoint.sh /usr/local/bin/warmcv-entrypoint
# SAGEMAKER_TRAINING_MODULE runs our code inside the toolkit's own process (framework-module mode), so
# the SIGTERM handler of a coordinator stops its folds (see container_src/warmcv/modes/entry.py).
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    SAGEMAKER_TRAINING_MODULE=warmcv.modes.entry:train
# Serving reads its port from SAGEMAKER_BIND_TO_PORT (inference pipelines); 8080 otherwise.
LABEL com.amazonaws.sagemaker.capabilities.accept-bind-to-port=true \
      org.opencontainers.image.title=warmcv \
      org.opencontainers.image.description="k-fold cross-validated LightGBM tuning on SageMaker warm pools"
EXPOSE 8080
# Runs as root, as SageMaker does with every training, processing and serving container: /opt/ml and
# the mounted channels belong to root, so a USER here would break writing the model (docs/image.md).
ENTRYPOINT ["/usr/local/bin/warmcv-entrypoint"]
