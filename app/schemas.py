"""Request and response bodies of the HTTP API (pydantic v2), with the examples shown in /docs."""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

from facever.app.core.config import MultiFacePolicy
from facever.model.errors import ErrorCode

SCORE_TYPE = "cosine_similarity"
SCORE_EXPLANATION = (
    "score is the cosine similarity of the two L2-normalised face embeddings, from -1 to 1; higher means "
    "more alike; verified is true when score >= threshold. Templates made by another model (name or "
    "version) are never compared."
)
IDENTITY_SCORE_EXPLANATION = (
    "score is the best match: the highest cosine similarity (-1 to 1, higher = more alike) between the "
    "probe face and any template of the identity made by the current model; verified is true when "
    "score >= threshold."
)
IDENTIFY_SCORE_EXPLANATION = (
    "each identity's score is its best match: the highest cosine similarity (-1 to 1, higher = more alike) "
    "between the probe face and any of its templates made by the current model; identities are ranked by it. "
    "Only identities with score >= threshold are listed unless include_below_threshold is true. The "
    "threshold is identify's own, stricter than verify's (by default the model card's identify_threshold, "
    "calibrated for a false accept rate of 1e-4 per comparison): a probe is compared with every enrolled "
    "person, and each comparison is one more chance of a false match."
)

PROBABILITY_EXPLANATION = (
    "probability, from 0 to 1, that the two faces are the same person, from the model card's calibration "
    "map of the score (fitted on every pair of photos of LFW fold 9's people). It assumes as many "
    "same-person as different-person comparisons (an equal prior): where same-person pairs are rarer, the "
    "real probability is lower (prior odds times this probability's odds). None when the model card has "
    "no calibration map."
)

_THRESHOLD = Field(
    None, ge=-1.0, le=1.0, description="decision threshold (cosine similarity) instead of the model's default"
)
_POLICY = Field(
    None,
    description="several faces in an image: 'largest' uses the largest (by the part of its box inside the "
    "image), 'single' rejects the image (default: the service's FACEVER_MULTI_FACE_POLICY)",
)
_BASE64 = "the image file (JPEG, PNG, WebP, BMP, TIFF, GIF), base64-encoded; a data: URL prefix is accepted"
# The start of a JPEG file: valid base64 (an example of the encoding, not a whole image).
_B64_EXAMPLE = "/9j/4AAQSkZJRgABAQAAAQABAAD/"
# Deepest nesting of objects and lists accepted in an identity's metadata.
MAX_METADATA_DEPTH = 32
# Validation error types that become the error code of the response (see facever.app.errors).
VALIDATION_CODES = (ErrorCode.INVALID_CHARACTER, ErrorCode.INVALID_METADATA)


def _check_text(value: str) -> str:
    """Refuse what the databases cannot store in a text column: NUL (PostgreSQL) and lone surrogates."""
    if "\x00" in value:
        raise PydanticCustomError(
            ErrorCode.INVALID_CHARACTER, "the text must not contain the NUL character (U+0000)"
        )
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise PydanticCustomError(
            ErrorCode.INVALID_CHARACTER, "the text must not contain unpaired surrogates (not valid Unicode)"
        ) from None
    return value


StoredText = Annotated[str, AfterValidator(_check_text)]

LATEST_YEAR = 9000  # beyond, a time can overflow the databases' and Python's range in some time zone


def _as_utc(value: datetime) -> datetime:
    """A time with a zone, in UTC (SQLite compares stored times as text: they must share one zone)."""
    try:
        value = value.astimezone(UTC)
    except OverflowError:
        raise PydanticCustomError(ErrorCode.INVALID_REQUEST, "the time is out of range") from None
    if value.year > LATEST_YEAR:
        raise PydanticCustomError(ErrorCode.INVALID_REQUEST, f"the time is after the year {LATEST_YEAR}")
    return value


UTCTime = Annotated[AwareDatetime, AfterValidator(_as_utc)]


def _check_not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must contain something other than white space")
    return value


# A name or external ID that shows something: "   " would be a nameless identity in every list.
VisibleText = Annotated[StoredText, AfterValidator(_check_not_blank)]


def check_metadata(metadata: dict[str, Any]) -> dict[str, Any]:
    """Every string (keys too) storable, numbers finite, nesting at most MAX_METADATA_DEPTH levels."""
    pending: list[tuple[Any, int]] = [(metadata, 1)]
    while pending:
        value, depth = pending.pop()
        if isinstance(value, dict | list):
            if depth > MAX_METADATA_DEPTH:
                raise PydanticCustomError(
                    ErrorCode.INVALID_METADATA,
                    f"the metadata is nested deeper than {MAX_METADATA_DEPTH} levels",
                )
            items: Iterable[Any]
            if isinstance(value, dict):
                for key in value:
                    _check_text(key)
                items = value.values()
            else:
                items = value
            pending.extend((item, depth + 1) for item in items)
        elif isinstance(value, str):
            _check_text(value)
        elif isinstance(value, float) and not math.isfinite(value):
            raise PydanticCustomError(
                ErrorCode.INVALID_METADATA, "the metadata must not contain NaN or Infinity"
            )
    return metadata


_FACE_EXAMPLE: dict[str, Any] = {
    "image": "image1",
    "box": [71.9, 62.3, 175.6, 191.8],
    "box_normalized": [0.288, 0.249, 0.702, 0.767],
    "landmarks": {
        "left_eye": [104.2, 115.0],
        "right_eye": [146.8, 113.9],
        "nose": [126.3, 140.2],
        "mouth_left": [107.9, 164.1],
        "mouth_right": [143.0, 163.2],
    },
    "detection_score": 0.9998,
    "faces_found": 1,
    "image_size": {"width": 250, "height": 250},
    "quality": {
        "score": 1.0,
        "size": 1.0,
        "sharpness": 1.0,
        "pose": 1.0,
        "exposure": 1.0,
        "inter_ocular_px": 42.6,
        "box_side_px": 103.7,
        "laplacian_ratio": 0.0412,
        "yaw": 4.2,
        "pitch": 3.1,
        "brightness": 0.488,
        "clipped": 0.0,
    },
}


# -- errors ----------------------------------------------------------------------------------------


class ErrorBody(BaseModel):
    code: str = Field(description="machine-readable reason, e.g. no_face, invalid_api_key")
    message: str = Field(description="what went wrong, for people")


class ErrorResponse(BaseModel):
    error: ErrorBody
    request_id: str

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "error": {"code": ErrorCode.NO_FACE, "message": "image2: no face was found in the image"},
                    "request_id": "6f1c2a9e0b7d4c55a1e2f3a4b5c6d7e8",
                }
            ]
        }
    )


# -- shared parts ----------------------------------------------------------------------------------


class ModelInfo(BaseModel):
    name: str
    version: str


class ImageSize(BaseModel):
    width: int
    height: int


class QualityOut(BaseModel):
    score: float = Field(
        description="overall face quality, 0..1: the lowest of size, sharpness, pose and exposure; "
        "enrollment refuses a face below FACEVER_MIN_ENROLL_QUALITY"
    )
    size: float = Field(
        description="0..1 from the inter-ocular distance (or box side / 2.5): 0 at 10 px, 1 from 30 px"
    )
    sharpness: float = Field(description="0..1 from laplacian_ratio")
    pose: float = Field(
        description="0..1 from the larger of |yaw| and |pitch|: 1 up to 30 degrees, 0 from 60"
    )
    exposure: float = Field(description="0..1 from brightness (too dark or too bright) and clipped")
    inter_ocular_px: float = Field(description="distance between the eye landmarks, pixels of the image")
    box_side_px: float = Field(description="the face box's shorter side, pixels of the image")
    laplacian_ratio: float = Field(
        description="variance of the Laplacian of the grey aligned crop's centre over its grey variance "
        "(low: blurred)"
    )
    yaw: float = Field(description="degrees, estimated from the landmarks; 0 facing the camera")
    pitch: float = Field(description="degrees, estimated from the landmarks; positive looking down")
    brightness: float = Field(description="mean luma of the aligned crop's centre, 0..1")
    clipped: float = Field(description="share of the crop's centre at black or white")


class FaceOut(BaseModel):
    image: str = Field(description="the request field the image came in (image1, image2, image, images[3])")
    box: list[float] = Field(description="x1, y1, x2, y2 in pixels of the upright image, clipped to it")
    box_normalized: list[float] = Field(description="the box divided by the image width and height (0..1)")
    landmarks: dict[str, list[float]] = Field(
        description="x, y in pixels: left_eye, right_eye, nose, mouth_left, mouth_right (as seen in the "
        "image)"
    )
    detection_score: float = Field(description="the detector's confidence, 0..1")
    faces_found: int = Field(description="faces found in the image; the largest one was used")
    image_size: ImageSize = Field(description="of the decoded image, after applying EXIF orientation")
    quality: QualityOut = Field(description="face size, sharpness, pose, exposure and an overall score")
    crop_png: str | None = Field(
        None,
        description="the aligned crop the model saw, a base64 PNG (verify with include_crop=true only)",
        exclude_if=lambda v: v is None,
    )


class TimingMs(BaseModel):
    total: float = Field(description="time in the handler, milliseconds")
    queue: float = Field(description="waiting for an inference slot")
    decode: float
    detect: float
    embed: float
    search: float | None = Field(
        None, description="gallery search (identify only)", exclude_if=lambda v: v is None
    )


class IdentityRef(BaseModel):
    id: int
    name: str
    external_id: str | None = None


# -- verify ----------------------------------------------------------------------------------------


class VerifyOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    threshold: float | None = _THRESHOLD
    multi_face_policy: MultiFacePolicy | None = _POLICY
    include_crop: bool = Field(
        False, description="also return each face's aligned crop (the model's input) as base64 PNG: crop_png"
    )


class VerifyJSON(VerifyOptions):
    image1: str = Field(description=_BASE64)
    image2: str = Field(description=_BASE64)

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"image1": _B64_EXAMPLE, "image2": _B64_EXAMPLE}]}
    )


class VerifyResponse(BaseModel):
    verified: bool
    score: float = Field(description=SCORE_EXPLANATION)
    probability: float | None = Field(None, description=PROBABILITY_EXPLANATION)
    threshold: float
    score_type: str = SCORE_TYPE
    score_explanation: str = SCORE_EXPLANATION
    model: ModelInfo
    faces: list[FaceOut] = Field(description="the face used from image1, then from image2")
    timing_ms: TimingMs
    request_id: str

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "verified": True,
                    "score": 0.9370,
                    "probability": 0.9911,
                    "threshold": 0.9090,
                    "score_type": SCORE_TYPE,
                    "score_explanation": SCORE_EXPLANATION,
                    "model": {"name": "facever-dlib", "version": "1.0.0"},
                    "faces": [_FACE_EXAMPLE, {**_FACE_EXAMPLE, "image": "image2"}],
                    "timing_ms": {"total": 61.2, "queue": 0.1, "decode": 1.2, "detect": 38.5, "embed": 20.3},
                    "request_id": "6f1c2a9e0b7d4c55a1e2f3a4b5c6d7e8",
                }
            ]
        }
    )


# -- identities ------------------------------------------------------------------------------------


class IdentityCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"name": "Ada Lovelace", "external_id": "employee-1815", "metadata": {"team": "analytics"}}
            ]
        },
    )

    name: VisibleText = Field(min_length=1, max_length=256)
    external_id: VisibleText | None = Field(
        None, min_length=1, max_length=256, description="your own ID; unique"
    )
    metadata: dict[str, Any] = Field(
        default_factory=dict,
        description="any JSON object, stored as given: at most FACEVER_MAX_METADATA_BYTES (16 KiB) as JSON, "
        f"nested at most {MAX_METADATA_DEPTH} levels; no NUL characters, NaN or Infinity",
    )
    expires_at: UTCTime | None = Field(
        None,
        description="when the service erases this identity and its templates by itself (with a time zone; in "
        "the future, and no later than FACEVER_IDENTITY_RETENTION_DAYS from now when that is set)",
    )

    @field_validator("metadata")
    @classmethod
    def _metadata_is_storable(cls, value: dict[str, Any]) -> dict[str, Any]:
        return check_metadata(value)


class IdentityOut(BaseModel):
    id: int
    name: str
    external_id: str | None
    metadata: dict[str, Any]
    face_count: int = Field(description="templates made by the current model (the ones that are compared)")
    other_model_face_count: int = Field(
        description="templates made by other models: never compared; enroll the faces again to use them"
    )
    created_at: datetime
    expires_at: datetime | None = Field(
        description="when the service erases the identity by itself (its own expires_at or "
        "FACEVER_IDENTITY_RETENTION_DAYS after created_at, whichever is first); null = kept until deleted"
    )


class FaceRecord(BaseModel):
    id: int
    model: ModelInfo
    detection_score: float
    quality: float | None = Field(
        description="the face's overall quality score at enrollment (quality.score of the enrollment's "
        "answer, 0..1); null for faces enrolled before facever kept it"
    )
    created_at: datetime = Field(description="when the face was enrolled")


class IdentityDetail(IdentityOut):
    faces: list[FaceRecord]


class IdentityPage(BaseModel):
    items: list[IdentityOut]
    total: int
    offset: int
    limit: int


class EnrollOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    multi_face_policy: MultiFacePolicy | None = Field(
        None,
        description="several faces in an image: enrollment rejects such an image ('single', the default "
        "here whatever FACEVER_MULTI_FACE_POLICY says) unless 'largest' is asked for, which enrolls "
        "the largest face",
    )


class EnrollJSON(EnrollOptions):
    images: list[str] = Field(min_length=1, description="one or more images, " + _BASE64)

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"images": [_B64_EXAMPLE]}]})


class EnrollResult(BaseModel):
    index: int = Field(description="position of the image in the request, from 0")
    filename: str | None
    accepted: bool
    face_id: int | None = Field(None, description="the new template's id, when accepted")
    face: FaceOut | None = None
    error: ErrorBody | None = Field(None, description="why the image was rejected")


class EnrollResponse(BaseModel):
    identity_id: int
    enrolled: int
    rejected: int
    face_count: int = Field(description="templates of the identity made by the current model, now")
    results: list[EnrollResult]
    model: ModelInfo
    timing_ms: TimingMs
    request_id: str

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "identity_id": 1,
                    "enrolled": 1,
                    "rejected": 1,
                    "face_count": 3,
                    "results": [
                        {
                            "index": 0,
                            "filename": "ada1.jpg",
                            "accepted": True,
                            "face_id": 17,
                            "face": {**_FACE_EXAMPLE, "image": "images[0]"},
                        },
                        {
                            "index": 1,
                            "filename": "cat.jpg",
                            "accepted": False,
                            "error": {"code": ErrorCode.NO_FACE, "message": "no face was found in the image"},
                        },
                    ],
                    "model": {"name": "facever-dlib", "version": "1.0.0"},
                    "timing_ms": {"total": 120.4, "queue": 0.1, "decode": 2.3, "detect": 80.1, "embed": 30.2},
                    "request_id": "6f1c2a9e0b7d4c55a1e2f3a4b5c6d7e8",
                }
            ]
        }
    )


class ProbeOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    threshold: float | None = _THRESHOLD
    multi_face_policy: MultiFacePolicy | None = _POLICY


class ProbeJSON(ProbeOptions):
    image: str = Field(description=_BASE64)

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"image": _B64_EXAMPLE}]})


class IdentityVerifyResponse(BaseModel):
    verified: bool
    score: float = Field(description=IDENTITY_SCORE_EXPLANATION)
    probability: float | None = Field(None, description=PROBABILITY_EXPLANATION)
    threshold: float
    score_type: str = SCORE_TYPE
    score_explanation: str = IDENTITY_SCORE_EXPLANATION
    identity: IdentityRef
    best_face_id: int = Field(description="the template that matched best")
    templates_compared: int
    model: ModelInfo
    face: FaceOut
    timing_ms: TimingMs
    request_id: str


# -- identify --------------------------------------------------------------------------------------


class IdentifyOptions(ProbeOptions):
    top_k: int | None = Field(None, ge=1, le=100, description="most identities to return (default 5)")
    include_below_threshold: bool = Field(
        False, description="also list identities scoring under the threshold"
    )


class IdentifyJSON(IdentifyOptions):
    image: str = Field(description=_BASE64)

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"image": _B64_EXAMPLE, "top_k": 3}]}
    )


class IdentifyMatch(BaseModel):
    identity: IdentityRef
    score: float
    probability: float | None = Field(None, description=PROBABILITY_EXPLANATION)
    above_threshold: bool
    face_id: int = Field(description="the identity's template that matched best")


class IdentifyResponse(BaseModel):
    matches: list[IdentifyMatch] = Field(description="best first")
    threshold: float
    score_type: str = SCORE_TYPE
    score_explanation: str = IDENTIFY_SCORE_EXPLANATION
    gallery_size: int = Field(description="templates of the current model searched")
    model: ModelInfo
    face: FaceOut
    timing_ms: TimingMs
    request_id: str

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "matches": [
                        {
                            "identity": {"id": 1, "name": "Ada Lovelace", "external_id": "employee-1815"},
                            "score": 0.9515,
                            "probability": 0.9992,
                            "above_threshold": True,
                            "face_id": 17,
                        }
                    ],
                    "threshold": 0.9469,
                    "score_type": SCORE_TYPE,
                    "score_explanation": IDENTIFY_SCORE_EXPLANATION,
                    "gallery_size": 1204,
                    "model": {"name": "facever-dlib", "version": "1.0.0"},
                    "face": {**_FACE_EXAMPLE, "image": "image"},
                    "timing_ms": {
                        "total": 70.3,
                        "queue": 0.0,
                        "decode": 1.1,
                        "detect": 40.2,
                        "embed": 20.0,
                        "search": 0.4,
                    },
                    "request_id": "6f1c2a9e0b7d4c55a1e2f3a4b5c6d7e8",
                }
            ]
        }
    )


# -- service ---------------------------------------------------------------------------------------


class GalleryInfo(BaseModel):
    templates: int = Field(description="templates of the current model held in memory for identify")
    identities: int
    version: int | None = Field(description="the gallery version this replica has applied")
    encrypted_at_rest: bool = Field(
        False, description="templates are written encrypted (FACEVER_TEMPLATE_KEY is set); false: in clear"
    )


class Limits(BaseModel):
    max_image_bytes: int
    max_image_pixels: int
    max_request_bytes: int
    max_enroll_images: int


class InfoResponse(BaseModel):
    service: dict[str, str]
    model: dict[str, Any] = Field(description="the model card")
    threshold: float = Field(description="verify's decision threshold in use (cosine similarity)")
    identify_threshold: float = Field(description="identify's decision threshold in use (cosine similarity)")
    score_type: str = SCORE_TYPE
    model_source: str = Field(description="FACEVER_MODEL: a shipped model's name or a folder")
    shipped_models: list[str] = Field(description="the models inside the package, by name (FACEVER_MODEL)")
    providers: list[str] = Field(
        description="onnxruntime execution providers of the embedding, preferred first"
    )
    stage_providers: dict[str, str] = Field(
        description="the execution provider each stage runs on: detection, embedding"
    )
    detection_ms: dict[str, float] = Field(
        description="with FACEVER_DETECTION_DEVICE=auto and the embedding on CUDA: ms a photo that face "
        "detection took on each device at start-up, which chose where it runs; else empty"
    )
    gallery: GalleryInfo
    auth: str = Field(description="enabled or disabled")
    key_scope: str = Field(
        description="what the key sent allows: verify (verify, identify) or admin (also identities); "
        "admin when auth is disabled"
    )
    warning: str | None = Field(None, description="set when something is unsafe, e.g. auth disabled")
    multi_face_policy: MultiFacePolicy
    workers: int = Field(description="server processes (FACEVER_WORKERS), each with the fields below")
    inference_workers: int = Field(description="requests analysed at the same time in this process")
    ort_threads: int = Field(description="onnxruntime threads each of them uses")
    batch_window_ms: float = Field(
        description="embedding batches wait this long for concurrent requests' faces; 0 = no batching"
    )
    max_batch: int = Field(description="most faces in one embedding batch")
    detection_batch_window_ms: float = Field(
        description="detection batches wait this long for concurrent requests' photos; 0 = no batching"
    )
    max_detection_batch: int = Field(description="most photos in one detection batch")
    limits: Limits
    database: str = Field(description="the database backend: sqlite or postgresql")


class Health(BaseModel):
    status: str
    checks: dict[str, str] | None = Field(None, exclude_if=lambda v: v is None)


class AuditRecordOut(BaseModel):
    id: int
    at: datetime
    operation: str = Field(
        description="verify, identity_verify, identify, create_identity, enroll, "
        "delete_identity, delete_face or expire_identity (erased by retention)"
    )
    api_key_id: int | None = Field(
        description="the key's id (facever keys list); null for keys from the "
        "environment and for the service's own erasures"
    )
    api_key_name: str = Field(description="the key's name (never the key), or who else acted")
    identity_ids: list[int] = Field(description="identities involved (identify: those returned)")
    decision: str | None = Field(
        description="match / no_match, enrolled / rejected, created, deleted, erased"
    )
    score: float | None
    threshold: float | None
    model: ModelInfo | None
    request_id: str | None
    detail: dict[str, Any]


class AuditPage(BaseModel):
    items: list[AuditRecordOut] = Field(description="newest first")
    next_before_id: int | None = Field(
        description="pass as before_id for the next (older) page; null when this is the last"
    )
