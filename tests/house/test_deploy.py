"""The deployment files are valid without a Docker engine or a cluster: `docker compose config`
on deploy/docker-compose.yml, and the Kubernetes manifests in deploy/k8s checked field by field."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import missing_service

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
SECRETS = {
    "POSTGRES_PASSWORD": "pw-from-the-environment",
    "LEADSCORE_ADMIN_KEY": "ls_admin-from-env",
}
COMPOSE_HINT = "no `docker compose` or `docker-compose`: `make compose` (Debian's docker-compose)"


def _compose() -> list[str]:
    docker = shutil.which("docker")
    if (
        docker
        and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0
    ):
        return [docker, "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    missing_service(COMPOSE_HINT)
    raise AssertionError("unreachable")


def _config(env: dict[str, str]) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in SECRETS}
    return subprocess.run(
        [*_compose(), "-f", str(DEPLOY / "docker-compose.yml"), "config"],
        capture_output=True, text=True, env={**clean, **env}, cwd=DEPLOY,
    )  # fmt: skip


def test_compose_file_is_valid_and_has_the_whole_topology():
    done = _config(SECRETS)
    assert done.returncode == 0, done.stderr
    config = yaml.safe_load(done.stdout)
    services = config["services"]
    assert set(services) == {"db", "mlflow", "api", "lb", "retrain"}
    assert services["api"]["deploy"]["replicas"] == 2
    for name in ("db", "mlflow", "api", "lb"):
        assert services[name]["healthcheck"]["test"], f"{name} has no health check"

    def healthy(s):
        return {
            k for k, v in services[s]["depends_on"].items() if v["condition"] == "service_healthy"
        }

    assert healthy("mlflow") == {"db"}
    assert healthy("api") == {"db", "mlflow"}
    assert healthy("lb") == {"api"}
    assert {"db", "mlflow"} <= healthy("retrain")
    assert "leadscore retrain" in " ".join(services["retrain"]["command"])
    # the secrets come from the environment, and only from there
    assert SECRETS["POSTGRES_PASSWORD"] in services["api"]["environment"]["LEADSCORE_DATABASE_URL"]
    assert (
        SECRETS["LEADSCORE_ADMIN_KEY"]
        in services["api"]["environment"]["LEADSCORE_API_KEYS_BOOTSTRAP"]
    )
    raw = (DEPLOY / "docker-compose.yml").read_text()
    assert all(secret not in raw for secret in SECRETS.values())


def test_compose_without_a_secret_says_which_to_set():
    done = _config({"LEADSCORE_ADMIN_KEY": "x"})
    assert done.returncode != 0
    assert "set POSTGRES_PASSWORD" in done.stderr + done.stdout


def _manifests() -> list[dict]:
    docs = []
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def test_kubernetes_manifests_have_their_required_fields_and_fit_together():
    kustomization = yaml.safe_load((DEPLOY / "k8s" / "kustomization.yaml").read_text())
    files = {p.name for p in (DEPLOY / "k8s").glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == files
    docs = _manifests()
    kinds: dict[str, dict] = {}
    pods = []
    for doc in docs:
        assert doc.get("apiVersion") and doc.get("kind") and doc["metadata"].get("name"), doc
        kinds[f"{doc['kind']}/{doc['metadata']['name']}"] = doc
        spec = doc.get("spec", {})  # a ConfigMap has data instead
        template = (
            spec["jobTemplate"]["spec"]["template"] if doc["kind"] == "CronJob"
            else spec.get("template")
        )  # fmt: skip
        if template is None:
            continue
        if doc["kind"] in ("Deployment", "StatefulSet"):
            assert spec["selector"]["matchLabels"].items() <= template["metadata"]["labels"].items()
        pods.append(template)
        for container in template["spec"]["containers"]:
            assert container["name"] and container["image"], container
            for env in container.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref:  # every secret is one key of the secret the README says to create
                    assert ref["name"] == "leadscore-secrets"
                    assert (
                        f"--from-literal={ref['key']}="
                        in (DEPLOY / "k8s" / "kustomization.yaml").read_text()
                    )
    assert {"Deployment/leadscore-api", "Service/leadscore-api", "Deployment/mlflow", "Service/mlflow",
            "StatefulSet/postgres", "Service/postgres", "CronJob/leadscore-retrain"} <= set(kinds)  # fmt: skip
    api = kinds["Deployment/leadscore-api"]
    assert api["spec"]["replicas"] == 2
    container = api["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    # every Service reaches some pod, on a port that pod exposes
    for key, doc in kinds.items():
        if doc["kind"] != "Service":
            continue
        matching = [
            p
            for p in pods
            if doc["spec"]["selector"].items() <= p.get("metadata", {}).get("labels", {}).items()
        ]
        assert matching, f"{key} selects no pod"
        exposed = {
            port["containerPort"]
            for p in matching
            for c in p["spec"]["containers"]
            for port in c.get("ports", [])
        }
        for port in doc["spec"]["ports"]:
            assert port.get("targetPort", port["port"]) in exposed, f"{key} port {port}"
    # the services the API and the job are pointed at exist
    for pod in pods:
        for container in pod["spec"]["containers"]:
            for env in container.get("env", []):
                if env["name"] == "MLFLOW_TRACKING_URI":
                    assert env["value"] == "http://mlflow:5000" and "Service/mlflow" in kinds


@pytest.mark.parametrize("path", ["docker-compose.yml", "nginx.conf", "postgres-init.sql"])
def test_deploy_files_exist(path):
    assert (DEPLOY / path).stat().st_size > 0


def dockerfile_stages() -> dict[str, list[str]]:
    """{stage name: its instructions (continuation lines joined)}, in the Dockerfile's order."""
    text = (DEPLOY.parent / "Dockerfile").read_text().replace("\\\n", " ")
    stages: dict[str, list[str]] = {}
    current: list[str] = []
    for line in text.splitlines():
        line = line.strip()
        if line.upper().startswith("FROM "):
            words = line.split()
            assert len(words) == 4 and words[2].upper() == "AS", f"unnamed stage: {line}"
            current = stages.setdefault(words[3], [line])
        elif line and not line.startswith("#"):
            current.append(line)
    return stages


def _copied(stage: list[str]) -> set[str]:
    return {
        line.split()[1]
        for line in stage
        if line.startswith("COPY ") and not line.startswith("COPY --from")
    }


def test_the_dockerfile_builds_a_serving_image_by_default_and_a_full_one():
    stages = dockerfile_stages()
    assert list(stages)[-1] == "serving", "`docker build .` must give the serving image"
    assert "full" in stages
    assert any(line.startswith("COPY --from=build-serving ") for line in stages["serving"])
    assert any(line.startswith("COPY --from=build-full ") for line in stages["full"])
    # serving: the serving lock and no training code; full: the runtime lock and all of it
    assert (
        "RUN /opt/venv/bin/pip install -r /tmp/requirements-serving.lock" in stages["build-serving"]
    )
    assert "RUN /opt/venv/bin/pip install -r /tmp/requirements-runtime.lock" in stages["build-full"]
    code = {"leadscore", "features", "serving"}
    assert (
        _copied(stages["build-serving"]) - {"requirements-serving.lock", "pyproject.toml"} == code
    )
    assert "training" in _copied(stages["build-full"])
    # only the serving image answers the API's health check on :8000
    assert any(line.startswith("HEALTHCHECK") for line in stages["serving"])
    assert not any(
        line.startswith("HEALTHCHECK") for s in ("runtime", "full") for line in stages[s]
    )
    # scripts/serving-venv.sh (the image's contents, tested without Docker) copies the same code
    script = (DEPLOY.parent / "scripts" / "serving-venv.sh").read_text()
    assert re.search(r"^cp -r leadscore features serving ", script, re.M)
    assert "-r requirements-serving.lock" in script


def test_each_service_runs_the_image_it_needs():
    """The API on the serving image; the MLflow server and the retrain job on the full one (the
    serving image has neither `mlflow server` nor training), in compose and on Kubernetes."""
    done = _config(SECRETS)
    assert done.returncode == 0, done.stderr
    services = yaml.safe_load(done.stdout)["services"]
    stages = dockerfile_stages()
    targets = {name: services[name]["build"]["target"] for name in ("mlflow", "api", "retrain")}
    assert targets == {"mlflow": "full", "api": "serving", "retrain": "full"}
    assert all(target in stages for target in targets.values())
    images = {name: services[name]["image"] for name in targets}
    assert images["mlflow"] == images["retrain"] != images["api"]
    kinds = {f"{d['kind']}/{d['metadata']['name']}": d for d in _manifests()}

    def image(key: str) -> str:
        spec = kinds[key]["spec"]
        pod = spec["jobTemplate"]["spec"]["template"] if "jobTemplate" in spec else spec["template"]
        return pod["spec"]["containers"][0]["image"]

    assert image("Deployment/leadscore-api") == images["api"]
    assert image("Deployment/mlflow") == images["mlflow"]
    assert image("CronJob/leadscore-retrain") == images["retrain"]
    kustomization = (DEPLOY / "k8s" / "kustomization.yaml").read_text()
    assert f"docker build -t {images['api']} ." in kustomization
    assert f"docker build --target full -t {images['mlflow']} ." in kustomization
