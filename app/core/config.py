"""Every setting of the service, read once from the environment (prefix ``FACEVER_``)."""

from __future__ import annotations

import os
from functools import lru_cache
from importlib.resources import files
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from facever.model.face_choice import MultiFacePolicy

MIB = 1024 * 1024


def shipped_model_dir(name: str = "default") -> Path:
    return Path(str(files("facever.model") / name))


def shipped_models() -> list[str]:
    """Names of the models that ship inside the package (folders of facever.model with a model card)."""
    root = Path(str(files("facever.model")))
    return sorted(p.parent.name for p in root.glob("*/model_card.json"))


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FACEVER_", case_sensitive=False, extra="ignore")

    database_url: str = Field(
        "sqlite:///./facever.db",
        description="SQLAlchemy URL: sqlite:///path (WAL mode) or postgresql+psycopg://user@host/db",
    )
    database_busy_timeout: float = Field(
        10.0,
        gt=0,
        description="seconds a write waits for another writer's lock (SQLite's busy timeout, PostgreSQL's "
        "lock_timeout) before the request is answered 503 database_busy",
    )
    auto_migrate: bool = Field(True, description="apply the database migrations when the service starts")
    model: str = Field(
        "default",
        description="a shipped model's name (see /v1/info) or the path of a folder with facever.onnx + "
        "model_card.json",
    )
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto",
        description="onnxruntime device of the embedding: auto = CUDA when available, else CPU; cuda fails "
        "at start-up when CUDA cannot run",
    )
    detection_device: Literal["auto", "cpu", "cuda"] = Field(
        "auto",
        description="device of face detection (MTCNN): auto = where it measured faster at start-up when "
        "the embedding runs on CUDA, else CPU",
    )
    workers: int = Field(
        0,
        ge=0,
        description="server processes (uvicorn workers), each with its own model and inference threads; "
        "0 = one per 2 CPU cores (at least 1, at most 16)",
    )
    ort_threads: int = Field(
        0,
        ge=0,
        description="onnxruntime threads per inference; 0 = the process's share of the CPU cores / "
        "inference workers",
    )
    batch_window_ms: float = Field(
        0.0,
        ge=0,
        le=1000,
        description="cross-request batching of the embedding: faces of requests arriving within this many "
        "ms share one run (a lone request does not wait); 0 = no batching (the default: it measured "
        "slower on the CPU and on the GPU machine tried, BENCHMARKS.md)",
    )
    max_batch: int = Field(64, ge=1, le=1024, description="most faces in one batched embedding run")
    detection_batch_window_ms: float = Field(
        0.0,
        ge=0,
        le=1000,
        description="cross-request batching of face detection: photos of requests arriving within this "
        "many ms are detected together, each MTCNN stage run once for all (a lone request does not "
        "wait); for detection on CUDA, where a run costs about the same for 1 photo or 16; 0 = off (the "
        "default: not yet measured on a GPU; on the CPU it only adds waiting)",
    )
    max_detection_batch: int = Field(16, ge=1, le=256, description="most photos in one batched detection")
    threshold: float | None = Field(
        None, ge=-1.0, le=1.0, description="verify threshold (cosine similarity); default: the model card's"
    )
    identify_threshold: float | None = Field(
        None,
        ge=-1.0,
        le=1.0,
        description="identify threshold (cosine similarity); default: the model card's, stricter than verify",
    )

    auth: Literal["enabled", "disabled"] = Field(
        "enabled", description="'disabled' serves every request without a key (local trials only)"
    )
    api_keys_admin: SecretStr = Field(
        SecretStr(""), description="comma-separated bootstrap keys with scope admin (kept only as hashes)"
    )
    api_keys_verify: SecretStr = Field(
        SecretStr(""), description="comma-separated bootstrap keys with scope verify (kept only as hashes)"
    )

    template_key: SecretStr = Field(
        SecretStr(""),
        description="key that encrypts stored templates (AES-256-GCM): 32 random bytes in base64, from "
        "`facever keys new-template-key`; empty = templates stored in clear (said at start-up)",
    )
    template_key_file: Path | None = Field(
        None,
        description="a file holding the template key instead (first line; further lines: previous keys), "
        "e.g. a Docker secret",
    )
    template_previous_keys: SecretStr = Field(
        SecretStr(""),
        description="comma-separated earlier template keys, still read (never written) until "
        "`facever keys rotate-templates` has moved every template to the current key",
    )
    audit_retention_days: int = Field(
        0, ge=0, description="audit records older than this many days are deleted; 0 = kept forever"
    )
    identity_retention_days: int = Field(
        0,
        ge=0,
        description="identities (with all their templates) are erased this many days after their creation; "
        "0 = kept until deleted (or until their own expires_at)",
    )
    retention_sweep_interval: float = Field(
        60.0,
        gt=0,
        description="seconds between the service's sweeps for expired identities and audit records",
    )

    max_image_bytes: int = Field(10 * MIB, gt=0, description="largest accepted image file (413 above)")
    max_image_pixels: int = Field(40_000_000, gt=0, description="largest decoded image, width x height")
    max_request_bytes: int = Field(32 * MIB, gt=0, description="largest request body (413 above)")
    upload_budget_bytes: int = Field(
        128 * MIB,
        ge=0,
        description="request bodies admitted at the same time per server process, in bytes of their "
        "Content-Length (a body sent without one counts as max_request_bytes; bodies up to 64 KiB are not "
        "counted), reserved before the body is read; a request that does not fit waits up to "
        "upload_wait_timeout, then gets 503 uploads_busy (0 = no limit)",
    )
    upload_wait_timeout: float = Field(
        10.0,
        ge=0,
        description="seconds a request waits for room in upload_budget_bytes before 503 uploads_busy "
        "(0 = no wait); body_timeout counts from the admission",
    )
    max_enroll_images: int = Field(10, gt=0, description="most images in one enrollment request")
    min_enroll_quality: float = Field(
        0.5,
        ge=0,
        le=1,
        description="enrollment refuses a face whose quality score is below this (face_too_small, "
        "too_blurred, pose_too_far, badly_exposed); 0 accepts every face",
    )
    max_metadata_bytes: int = Field(
        16 * 1024, gt=0, description="largest identity metadata, serialized as JSON in UTF-8 (422 above)"
    )
    multi_face_policy: MultiFacePolicy = Field(
        "largest", description="several faces in an image: use the largest, or reject ('single')"
    )

    inference_workers: int = Field(
        0,
        ge=0,
        description="requests analysed at the same time in each process (threads); 0 = the process's "
        "share of the CPU cores, at least 2",
    )
    max_queue: int = Field(64, ge=0, description="requests waiting for an inference slot before 503")
    gallery_poll_interval: float = Field(
        0.5, gt=0, description="seconds between checks for enrollments made by other replicas"
    )
    gallery: Literal["auto", "memory", "pgvector"] = Field(
        "auto",
        description="what identify searches: auto = PostgreSQL's HNSW index where the database has "
        "pgvector (migration 0004 (pgvector)), else each replica's in-memory copy (exact); memory or "
        "pgvector force one (pgvector fails at start where the database lacks it)",
    )
    hnsw_ef_search: int = Field(
        120,  # 1 M templates on 2 cores: recall@1 0.992, p50 8 ms (200: 0.998, 10.8 ms); BENCHMARKS.md
        ge=10,
        le=1000,
        description="pgvector gallery: candidates the HNSW search keeps per identify (hnsw.ef_search, "
        "set per query), re-ranked by exact cosine; higher = closer to exact search, slower",
    )
    default_top_k: int = Field(5, ge=1, le=100, description="identities returned by identify by default")

    header_timeout: float = Field(
        10.0,
        ge=0,
        description="seconds a client has to send a request's line and headers, from connecting or from "
        "the previous response; the connection is closed after (0 = no limit)",
    )
    body_timeout: float = Field(
        60.0,
        ge=0,
        description="seconds a client has to send a request's whole body after its headers; "
        "the connection is closed after (0 = no limit)",
    )
    keep_alive_timeout: float = Field(
        5.0, gt=0, description="seconds an idle keep-alive connection is kept open between requests"
    )
    max_connections: int = Field(
        256,
        ge=0,
        description="open connections per server process; one more gets 503 too_many_connections "
        "(0 = no limit)",
    )
    max_connections_per_client: int = Field(
        128,
        ge=0,
        description="open connections per client address (the TCP peer's) per server process, by default "
        "half of max_connections, so that one client cannot hold them all; one more gets 503 "
        "too_many_client_connections. Proxies in trusted_proxies are held only to max_connections "
        "(0 = no limit)",
    )
    failed_auth_limit: int = Field(
        20,
        ge=0,
        description="failed authentications (wrong keys; a request without a key is not counted) a "
        "client address may make per failed_auth_window before 429 too_many_failed_auth (0 = no limit)",
    )
    trusted_proxies: str = Field(
        "",
        description="comma-separated addresses (or *) of reverse proxies whose X-Forwarded-For and "
        "X-Forwarded-Proto are believed; empty = none: the client address is the TCP peer's",
    )
    failed_auth_window: float = Field(
        60.0, gt=0, description="seconds over which failed authentications are counted, per client address"
    )
    key_rate_limit: float = Field(
        0.0,
        ge=0,
        description="requests per second each API key may make, on average, before 429 rate_limited "
        "(0 = no limit)",
    )
    key_rate_burst: int = Field(
        0, ge=0, description="requests a key may make at once above its rate; 0 = twice the rate, at least 1"
    )

    host: str = Field("127.0.0.1", description="address facever serve listens on")
    port: int = Field(8000, ge=1, le=65535, description="port facever serve listens on")
    log_level: str = Field("INFO", description="Python logging level")

    @property
    def resolved_model_dir(self) -> Path:
        """FACEVER_MODEL as a folder: a shipped model's name, else a path."""
        if self.model in shipped_models():
            return shipped_model_dir(self.model)
        path = Path(self.model).expanduser()
        if not (path / "model_card.json").is_file():
            raise ValueError(
                f"FACEVER_MODEL={self.model!r} is neither a shipped model ({', '.join(shipped_models())}) "
                "nor a folder with facever.onnx and model_card.json"
            )
        return path

    # The layout (BENCHMARKS.md, "GPU and cores"): Python holds its GIL through the parts of a request
    # around onnxruntime (HTTP, multipart, decoding, NMS), so one process cannot keep many cores
    # busy; several processes of 2 cores each, each with 2 inference threads of 1 onnxruntime thread,
    # scale with the cores where one process with more threads did not (16 cores: 35 requests/s).
    @property
    def resolved_workers(self) -> int:
        return self.workers or max(1, min(16, cpu_cores() // 2))

    @property
    def cores_per_worker(self) -> int:
        return max(1, cpu_cores() // self.resolved_workers)

    @property
    def resolved_inference_workers(self) -> int:
        return self.inference_workers or max(2, self.cores_per_worker)

    @property
    def resolved_ort_threads(self) -> int:
        # Every inference worker runs onnxruntime at the same time: with onnxruntime's default (all
        # cores each) they oversubscribe the CPU; on 2 cores that cost 40 % of the requests/s at
        # concurrency 8 (bench/load.py, 31 vs 54 requests/s).
        return self.ort_threads or max(1, self.cores_per_worker // self.resolved_inference_workers)

    def bootstrap_keys(self) -> dict[str, list[str]]:
        """Keys from the environment, by scope."""
        return {
            "admin": _split(self.api_keys_admin.get_secret_value()),
            "verify": _split(self.api_keys_verify.get_secret_value()),
        }


def cpu_cores() -> int:
    """The cores this process may run on (``taskset`` and container CPU sets count), not the machine's."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _split(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


@lru_cache
def get_settings() -> Settings:
    return Settings()
