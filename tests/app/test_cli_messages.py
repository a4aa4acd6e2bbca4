"""The CLI's newcomer paths end in one clear line and a non-zero status, not a traceback: a training
command in the serving install (no torch, no scikit-learn), and a database that cannot be reached."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

# Runs the CLI with the `train` extra's modules made unimportable, as in the venv `make run` makes.
WITHOUT_TRAIN_EXTRA = (
    "import sys\n"
    "for name in ('torch', 'sklearn', 'matplotlib', 'onnxscript', 'dlib'):\n"
    "    sys.modules[name] = None\n"
    "from facever.cli import app\n"
    "app(sys.argv[1:], prog_name='facever')\n"
)


def run(code: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("FACEVER_")}
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**environment, **(env or {})},
    )


def a_closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # closed again when the with block ends: nothing listens there


@pytest.mark.parametrize(
    ("command", "extra"),
    [
        (["eval", "lfw", "--fold", "10"], "eval"),
        (["eval", "cfp"], "eval"),
        (["train", "--config", "training/configs/shipped.yaml", "--max-steps", "1"], "train"),
        (["release", "runs/x/checkpoint.pt", "--out", "runs/x/model"], "train"),
    ],
)
def test_a_command_without_its_extra_says_what_to_install(command, extra, tmp_path):
    result = run(WITHOUT_TRAIN_EXTRA, *command)
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert f"pip install -e '.[{extra}]'" in lines[0] and "Traceback" not in result.stderr
    assert lines[0].startswith(f"facever {' '.join(command[:2]) if command[0] == 'eval' else command[0]} ")


@pytest.mark.parametrize("command", [["db", "upgrade"], ["serve"]])
def test_an_unreachable_database_is_one_line(command):
    url = f"postgresql+psycopg://facever:secret@127.0.0.1:{a_closed_port()}/facever"
    code = "import sys\nfrom facever.cli import app\napp(sys.argv[1:], prog_name='facever')\n"
    result = run(code, *command, env={"FACEVER_DATABASE_URL": url})
    assert result.returncode == 1, result.stdout + result.stderr
    errors = [line for line in result.stderr.splitlines() if " INFO " not in line]
    assert len(errors) == 1, result.stderr
    assert "cannot connect to the database" in errors[0] and "127.0.0.1" in errors[0]
    assert "secret" not in result.stderr and "Traceback" not in result.stderr


def test_an_unusable_sqlite_path_is_one_line(tmp_path):
    url = f"sqlite:///{tmp_path / 'no' / 'such' / 'folder' / 'facever.db'}"
    code = "import sys\nfrom facever.cli import app\napp(sys.argv[1:], prog_name='facever')\n"
    result = run(code, "db", "upgrade", env={"FACEVER_DATABASE_URL": url})
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if " INFO " not in line]
    assert len(errors) == 1 and "cannot connect to the database sqlite:///" in errors[0], result.stderr


@pytest.mark.skipif(
    "CUDAExecutionProvider" in __import__("onnxruntime").get_available_providers(),
    reason="this onnxruntime has CUDA: the refusal is for machines where it cannot run",
)
@pytest.mark.parametrize("variable", ["FACEVER_DEVICE", "FACEVER_DETECTION_DEVICE"])
def test_cuda_asked_for_where_it_cannot_run_is_one_line(variable, tmp_path):
    """FACEVER_DEVICE=cuda never falls back to the CPU silently: serve refuses to start, saying why."""
    code = "import sys\nfrom facever.cli import app\napp(sys.argv[1:], prog_name='facever')\n"
    env = {variable: "cuda", "FACEVER_DATABASE_URL": f"sqlite:///{tmp_path / 'facever.db'}"}
    result = run(code, "serve", env=env)
    assert result.returncode == 1, result.stdout + result.stderr
    errors = [line for line in result.stderr.splitlines() if " INFO " not in line]
    assert len(errors) == 1, result.stderr
    assert "CUDA cannot run here" in errors[0] and "CUDAExecutionProvider" in errors[0]
    assert "Traceback" not in result.stderr


def test_shipped_models_are_found_by_name_from_any_folder(tmp_path, monkeypatch):
    """`facever eval ... --model default` (the default) works outside the repository: the shipped
    models are package data, not paths relative to the working folder."""
    from facever.cli import _model_folder
    from facever.model.card import ModelCard

    monkeypatch.chdir(tmp_path)
    for name in ("default", "float"):
        assert ModelCard.load(_model_folder(name)).name.startswith("facever")
    code = "import sys\nfrom facever.cli import app\napp(sys.argv[1:], prog_name='facever')\n"
    result = subprocess.run(
        [sys.executable, "-c", code, "eval", "lfw", "--model", "nosuch"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    message = " ".join(result.stderr.split())
    assert result.returncode == 2 and "nor a shipped model (default, float)" in message
    assert "Traceback" not in result.stderr


def test_keys_are_listed_and_revoked(tmp_path, start_app):
    """`facever keys create/list/revoke` on one database: the list never shows a key, and a revoked
    key is refused by the service at once."""
    url = f"sqlite:///{tmp_path / 'facever.db'}"
    code = "import sys\nfrom facever.cli import app\napp(sys.argv[1:], prog_name='facever')\n"

    def cli(*args: str) -> subprocess.CompletedProcess:
        return run(code, "keys", *args, env={"FACEVER_DATABASE_URL": url})

    created = [
        cli("create", "--scope", scope, "--name", label)
        for scope, label in (("admin", "ops"), ("verify", "kiosk"))
    ]
    keys = [
        next(line.strip() for line in c.stdout.splitlines() if line.strip().startswith("fvk_"))
        for c in created
    ]
    listed = cli("list")
    assert listed.returncode == 0 and "#1  admin" in listed.stdout and "#2  verify" in listed.stdout
    assert "ops" in listed.stdout and "kiosk" in listed.stdout
    assert not any(key in listed.stdout for key in keys)  # never a whole key

    with start_app(url, api_keys_admin="", api_keys_verify="") as client:
        assert client.get("/v1/info", headers={"X-API-Key": keys[1]}).status_code == 200
        revoked = cli("revoke", "2")
        assert revoked.returncode == 0 and "Revoked API key #2" in revoked.stdout
        response = client.get("/v1/info", headers={"X-API-Key": keys[1]})
        assert response.status_code == 401 and response.json()["error"]["code"] == "invalid_api_key"
        assert client.get("/v1/info", headers={"X-API-Key": keys[0]}).status_code == 200

    assert "#2" not in cli("list").stdout
    missing = cli("revoke", "99")
    assert (
        missing.returncode == 1
        and missing.stderr.strip() == "facever: no API key #99 (facever keys list shows them)"
    )
