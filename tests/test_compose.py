"""The deployment files: docker-compose.yml (+ the GPU override), .env.example and the Dockerfile.

No container engine is needed: the compose files are parsed as YAML, and `docker-compose config`
(Debian package docker-compose) validates them when that binary is installed.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
COMPOSE = REPO / "docker-compose.yml"
COMPOSE_GPU = REPO / "docker-compose.gpu.yml"
ENV_EXAMPLE = REPO / ".env.example"
DOCKERFILE = REPO / "Dockerfile"

# ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}; not $${VAR} (escaped for the container)
VARIABLE = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def compose_gpu() -> dict:
    return yaml.safe_load(COMPOSE_GPU.read_text())


def _depends(service: dict) -> dict:
    depends = service.get("depends_on", {})
    assert isinstance(depends, dict), "depends_on must use the long form with conditions"
    return depends


def test_services_and_volume(compose):
    services = compose["services"]
    assert {"api", "db"} <= set(services)
    assert services["db"]["image"] == "pgvector/pgvector:pg16"  # PostgreSQL 16 with pgvector
    assert services["api"]["build"]["context"] == "."
    # the named volume keeps PostgreSQL's data
    assert "pgdata" in compose["volumes"]
    assert "pgdata:/var/lib/postgresql/data" in services["db"]["volumes"]


def test_health_checks(compose):
    db_check = compose["services"]["db"]["healthcheck"]["test"]
    assert "pg_isready" in " ".join(db_check)
    api_check = compose["services"]["api"]["healthcheck"]["test"]
    assert "/healthz" in " ".join(api_check)
    assert "HEALTHCHECK" in DOCKERFILE.read_text()
    # One shell string (podman's Docker API mis-splits a CMD list with spaces) and the service's port.
    assert api_check[0] == "CMD-SHELL" and len(api_check) == 2
    assert "FACEVER_PORT" in api_check[1] and ":8000/" not in api_check[1]


def test_api_waits_for_a_healthy_database(compose):
    services = compose["services"]
    assert _depends(services["api"])["db"]["condition"] == "service_healthy"
    # migrations run once before any replica (so that --scale api=3 does not race them)
    assert _depends(services["migrate"])["db"]["condition"] == "service_healthy"
    assert _depends(services["api"])["migrate"]["condition"] == "service_completed_successfully"
    assert services["migrate"]["command"] == ["facever", "db", "upgrade"]
    assert services["api"]["environment"]["FACEVER_AUTO_MIGRATE"] == "false"


def test_database_url_comes_from_the_environment(compose):
    for name in ("api", "migrate"):
        url = compose["services"][name]["environment"]["FACEVER_DATABASE_URL"]
        assert url.startswith("postgresql+psycopg://")
        assert "@db:5432/" in url
        assert "${POSTGRES_PASSWORD" in url, "the password must come from the environment / .env"
    db_env = compose["services"]["db"]["environment"]
    assert db_env["POSTGRES_PASSWORD"].startswith("${POSTGRES_PASSWORD")


def test_no_secret_is_committed(compose):
    for service in compose["services"].values():
        for key, value in (service.get("environment") or {}).items():
            if any(word in key for word in ("PASSWORD", "KEYS")):
                assert str(value).startswith("${"), f"{key} must come from the environment"
    assert ".env" in (REPO / ".gitignore").read_text().split()
    lines = ENV_EXAMPLE.read_text().splitlines()
    example = dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))
    assert example["POSTGRES_PASSWORD"] == ""


def test_api_can_scale(compose):
    """--scale api=3 needs no container_name and no single fixed host port."""
    api = compose["services"]["api"]
    assert "container_name" not in api
    for port in api.get("ports", []):
        published = str(port).rsplit(":", 1)[0]
        assert published == "" or "-" in published, f"fixed host port {port} collides when scaled"


def test_gpu_override_reserves_an_nvidia_device(compose_gpu):
    api = compose_gpu["services"]["api"]
    devices = api["deploy"]["resources"]["reservations"]["devices"]
    assert any(d["driver"] == "nvidia" and "gpu" in d["capabilities"] for d in devices)
    for name in ("api", "migrate"):
        args = compose_gpu["services"][name]["build"]["args"]
        assert args["VARIANT"] == "gpu"
        assert "cudnn" in args["BASE_IMAGE"] and args["BASE_IMAGE"].startswith("nvidia/cuda:12.")
        assert compose_gpu["services"][name]["image"] == "facever:gpu"


def test_env_example_names_every_variable_compose_uses():
    used = set()
    for path in (COMPOSE, COMPOSE_GPU):
        used |= set(VARIABLE.findall(path.read_text()))
    named = {
        line.split("=", 1)[0].strip()
        for line in ENV_EXAMPLE.read_text().splitlines()
        if "=" in line and not line.lstrip().startswith("#")
    }
    assert used, "the compose files should take their settings from the environment"
    assert used <= named, f".env.example lacks {sorted(used - named)}"


def test_dockerfile_is_the_serving_image():
    text = DOCKERFILE.read_text()
    assert re.search(r"^ARG BASE_IMAGE=python:3\.11-slim$", text, re.M)
    assert re.search(r"^USER facever$", text, re.M)
    assert 'CMD ["facever", "serve"]' in text
    assert "FACEVER_HOST=0.0.0.0" in text
    # only the serving extras go into the image (serve: onnxruntime, gpu-cuda12: onnxruntime-gpu), never train
    assert re.findall(r"echo (gpu-cuda12|serve)\b", text) == ["gpu-cuda12", "serve"]
    assert "[train" not in text and "[dev" not in text


@pytest.mark.parametrize("files", [["docker-compose.yml"], ["docker-compose.yml", "docker-compose.gpu.yml"]])
def test_docker_compose_config_accepts_the_files(files):
    if shutil.which("docker-compose") is None:
        message = "docker-compose (v1) is not installed: apt-get install docker-compose"
        if os.environ.get("FACEVER_TEST_REQUIRE_COMPOSE") == "1":  # CI installs it: a skip would hide it
            pytest.fail(message)
        pytest.skip(message)
    args = ["docker-compose"]
    for name in files:
        args += ["-f", name]
    result = subprocess.run(
        [*args, "config", "--quiet"], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
