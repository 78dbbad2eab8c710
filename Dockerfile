# leadscore: two images from one Dockerfile, each a venv from a pinned lock copied into a slim
# image that runs as a non-root user.
#
# serving (the default target, the last stage): `leadscore serve` (and `keys`, `policy`) only.
#   requirements-serving.lock: mlflow-skinny (the MLflow client: `models:/` URIs, registry calls,
#   mlflow-artifacts downloads over HTTP) instead of mlflow, no matplotlib, no pyspark, and no
#   training/ code. `leadscore train` there says to use the full image.
#     docker build -t leadscore:serving .
#     docker run -p 8000:8000 -e MLFLOW_TRACKING_URI=http://mlflow:5000 \
#       -e LEADSCORE_DATABASE_URL=postgresql+psycopg://user@db/leadscore leadscore:serving
# full: everything of requirements-runtime.lock: training, `leadscore retrain`, and the MLflow
#   tracking server (`mlflow server`: flask, graphene, gunicorn, docker...).
#     docker build --target full -t leadscore:full .
# The whole stack (PostgreSQL, MLflow and the retrain job on `full`, two API replicas on `serving`
# behind nginx):  docker compose -f deploy/docker-compose.yml up -d   (README, "Deployment")
#
# Installed sizes (du -sh of the venv's site-packages, python:3.11-slim adds ~130 MB to each):
#   serving  817 MB  (pyarrow 154, scipy 136, pandas 77, numpy 68, plotly 54, scikit-learn 46,
#                     mlflow-skinny 33, sqlalchemy 27: 78 distributions)
#   full     972 MB  (109: the same plus matplotlib 35, fonttools 28 and pillow 21 for it, the
#                     mlflow server's 28 and flask, graphene, gunicorn, docker, aiohttp...)
#   The serving image is 155 MB (16%) smaller; `python bench/image_size.py` prints these.
# Measured without a Docker engine: `bash scripts/serving-venv.sh` builds the serving venv the
# same way (same lock, same code), and tests/serving/test_serving_install.py runs it against an
# `mlflow server` and PostgreSQL.

FROM python:3.11-slim AS venv
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/venv

# serving's venv: the serving lock and the code `leadscore serve` runs (no training/)
FROM venv AS build-serving
COPY requirements-serving.lock /tmp/requirements-serving.lock
RUN /opt/venv/bin/pip install -r /tmp/requirements-serving.lock
COPY pyproject.toml README.md /src/
COPY leadscore /src/leadscore
COPY features /src/features
COPY serving /src/serving
RUN /opt/venv/bin/pip install --no-deps /src

# full's venv: the runtime lock (pyproject.toml's dependencies) and all the code
FROM venv AS build-full
COPY requirements-runtime.lock /tmp/requirements-runtime.lock
RUN /opt/venv/bin/pip install -r /tmp/requirements-runtime.lock
COPY pyproject.toml README.md /src/
COPY leadscore /src/leadscore
COPY features /src/features
COPY training /src/training
COPY serving /src/serving
RUN /opt/venv/bin/pip install --no-deps /src

FROM python:3.11-slim AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
# mlartifacts: the MLflow server's artifact root in deploy/docker-compose.yml (a named volume
# takes this folder's owner, so the non-root user can write it)
RUN useradd --create-home --uid 10001 leadscore \
    && install -d -o leadscore -g leadscore /home/leadscore/mlartifacts
USER leadscore
WORKDIR /home/leadscore

FROM runtime AS full
COPY --from=build-full /opt/venv /opt/venv
CMD ["leadscore", "--help"]

FROM runtime AS serving
COPY --from=build-serving /opt/venv /opt/venv
ENV LEADSCORE_HOST=0.0.0.0 \
    LEADSCORE_PORT=8000
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
  CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2).status == 200 else 1)"
CMD ["leadscore", "serve", "--host", "0.0.0.0", "--port", "8000"]
