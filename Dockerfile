# leadscore scoring service. Multi-stage: build a venv from the pinned runtime lock, copy it into a
# slim image that runs as a non-root user.
#   docker build -t leadscore .
#   docker run -p 8000:8000 -e MLFLOW_TRACKING_URI=http://mlflow:5000 \
#     -e LEADSCORE_DATABASE_URL=postgresql+psycopg://user@db/leadscore leadscore
# The whole stack (PostgreSQL, MLflow, two API replicas behind nginx, the retrain job):
#   docker compose -f deploy/docker-compose.yml up -d   (see the README's deployment section)
# Image size: ~925 MB of packages from requirements-runtime.lock (installed sizes; pyarrow, scipy,
# pandas, numpy, mlflow, plotly, scikit-learn lead) on python:3.11-slim (~130 MB). pyspark is an
# extra, not in it; matplotlib (~90 MB with its dependencies) comes in as a dependency of mlflow.
FROM python:3.11-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/venv
COPY requirements-runtime.lock /tmp/requirements-runtime.lock
RUN /opt/venv/bin/pip install -r /tmp/requirements-runtime.lock
COPY pyproject.toml README.md /src/
COPY leadscore /src/leadscore
COPY features /src/features
COPY training /src/training
COPY serving /src/serving
RUN /opt/venv/bin/pip install --no-deps /src

FROM python:3.11-slim
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    LEADSCORE_HOST=0.0.0.0 \
    LEADSCORE_PORT=8000
# mlartifacts: the MLflow server's artifact root in deploy/docker-compose.yml (a named volume
# takes this folder's owner, so the non-root user can write it)
RUN useradd --create-home --uid 10001 leadscore \
    && install -d -o leadscore -g leadscore /home/leadscore/mlartifacts
COPY --from=build /opt/venv /opt/venv
USER leadscore
WORKDIR /home/leadscore
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
  CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2).status == 200 else 1)"
CMD ["leadscore", "serve", "--host", "0.0.0.0", "--port", "8000"]
