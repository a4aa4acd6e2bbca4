"""Settings defaults and environment parsing, and the inference concurrency limit."""

from __future__ import annotations

import threading

import anyio
import pytest

from facever.app.analysis import FaceAnalyser
from facever.app.core import config
from facever.app.core.config import Settings, shipped_model_dir
from facever.app.errors import ApiError
from facever.model.images import ImageLimits


def test_defaults():
    settings = Settings()
    assert settings.database_url == "sqlite:///./facever.db"
    assert settings.auth == "enabled"
    assert settings.max_image_bytes == 10 * 1024 * 1024
    assert settings.max_image_pixels == 40_000_000
    assert settings.multi_face_policy == "largest"
    assert (settings.host, settings.port) == ("127.0.0.1", 8000)
    assert settings.resolved_model_dir == shipped_model_dir()
    assert (shipped_model_dir() / "model_card.json").is_file()
    assert settings.bootstrap_keys() == {"admin": [], "verify": []}


def test_environment(monkeypatch):
    monkeypatch.setenv("FACEVER_DATABASE_URL", "postgresql+psycopg://u@db/facever")
    monkeypatch.setenv("FACEVER_AUTH", "disabled")
    monkeypatch.setenv("FACEVER_API_KEYS_ADMIN", " fvk_a , fvk_b,")
    monkeypatch.setenv("FACEVER_MULTI_FACE_POLICY", "single")
    monkeypatch.setenv("FACEVER_INFERENCE_WORKERS", "3")
    settings = Settings()
    assert settings.database_url == "postgresql+psycopg://u@db/facever"
    assert settings.auth == "disabled" and settings.multi_face_policy == "single"
    assert settings.bootstrap_keys()["admin"] == ["fvk_a", "fvk_b"]
    assert settings.resolved_inference_workers == 3
    monkeypatch.setattr(config, "cpu_cores", lambda: 8)
    monkeypatch.setenv("FACEVER_WORKERS", "1")
    # 3 workers side by side share the process's 8 cores, not 3 x 8 threads
    assert Settings().resolved_ort_threads == 2
    monkeypatch.setenv("FACEVER_ORT_THREADS", "4")
    assert Settings().resolved_ort_threads == 4
    assert "fvk_a" not in repr(settings)  # keys are secrets: never shown


@pytest.mark.parametrize(
    "cores, layout",
    [(1, (1, 2, 1)), (2, (1, 2, 1)), (4, (2, 2, 1)), (16, (8, 2, 1)), (64, (16, 4, 1)), (3, (1, 3, 1))],
)
def test_default_layout_follows_the_cores(monkeypatch, cores, layout):
    """Processes x inference threads x onnxruntime threads: one process per 2 cores (at most 16), the
    process's cores split among its threads, never more onnxruntime threads than cores."""
    monkeypatch.setattr(config, "cpu_cores", lambda: cores)
    settings = Settings()
    got = (settings.resolved_workers, settings.resolved_inference_workers, settings.resolved_ort_threads)
    assert got == layout
    assert settings.resolved_workers * settings.resolved_ort_threads <= max(cores, 1)


@pytest.mark.parametrize(
    "name, value", [("FACEVER_AUTH", "off"), ("FACEVER_DEVICE", "tpu"), ("FACEVER_PORT", "0")]
)
def test_invalid_environment_is_refused(monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    with pytest.raises(ValueError):
        Settings()


def test_requests_beyond_the_queue_limit_are_refused_with_503(pipeline):
    """One inference slot, one waiting request allowed: the third request at once gets 503."""

    async def scenario() -> None:
        analyser = FaceAnalyser(pipeline, ImageLimits(), workers=1, max_queue=1)
        release = threading.Event()
        started = threading.Event()

        def slow() -> str:
            started.set()
            release.wait(10)
            return "done"

        results = []

        async def call() -> None:
            results.append(await analyser.run(slow))

        async with anyio.create_task_group() as group:
            group.start_soon(call)
            await anyio.to_thread.run_sync(started.wait, 10)
            group.start_soon(call)
            while analyser.limiter.statistics().tasks_waiting < 1:
                await anyio.sleep(0.01)
            with pytest.raises(ApiError) as refused:
                await analyser.run(slow)
            release.set()
        assert refused.value.status == 503 and refused.value.code == "overloaded"
        assert results == ["done", "done"]

    anyio.run(scenario)


def test_inference_runs_off_the_event_loop(sqlite_client):
    """While an inference slot is busy, the event loop still answers other requests."""
    analyser = sqlite_client.app.state.service.analyser
    busy, release = threading.Event(), threading.Event()

    def occupy() -> None:
        busy.set()
        release.wait(30)

    future = sqlite_client.portal.start_task_soon(analyser.run, occupy)
    try:
        assert busy.wait(10)
        assert sqlite_client.get("/healthz").status_code == 200
        assert sqlite_client.get("/readyz").status_code == 200
        assert not future.done()
    finally:
        release.set()
    future.result(timeout=10)


def test_facever_model_picks_a_shipped_model_by_name_or_a_folder(monkeypatch, tmp_path):
    from facever.app.core.config import shipped_models

    assert {"default", "float"} <= set(shipped_models())
    monkeypatch.setenv("FACEVER_MODEL", "float")
    assert Settings().resolved_model_dir == shipped_model_dir("float")
    monkeypatch.setenv("FACEVER_MODEL", str(shipped_model_dir("float")))
    assert Settings().resolved_model_dir == shipped_model_dir("float")
    monkeypatch.setenv("FACEVER_MODEL", str(tmp_path))  # a folder without a model card
    with pytest.raises(ValueError, match="neither a shipped model"):
        _ = Settings().resolved_model_dir


def test_the_default_model_is_the_float_network_quantised_and_mirrored_a_model_of_its_own():
    from facever.model.card import ModelCard

    default, float_model = ModelCard.load(shipped_model_dir()), ModelCard.load(shipped_model_dir("float"))
    # its templates are never compared with the float model's
    assert default.name == f"{float_model.name}-int8-mirrored" and default.flip_test_time
    assert not float_model.flip_test_time
    assert default.identify_threshold > default.threshold
    assert default.training.quantization.calibration_folds == default.calibration.folds == [9]
