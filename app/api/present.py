"""Turning analysis results into response parts."""

from __future__ import annotations

import base64
import io
import time

from PIL import Image

from facever.app.analysis import AnalysedFace, Timings
from facever.app.schemas import FaceOut, ImageSize, ModelInfo, QualityOut, TimingMs
from facever.app.stored_embeddings import ModelRef
from facever.model.detection import LANDMARK_NAMES
from facever.model.quality import FaceQuality


def face_out(result: AnalysedFace, image: str, include_crop: bool = False) -> FaceOut:
    width, height = result.width, result.height
    x1, y1, x2, y2 = result.face.box
    box = [_clip(x1, width), _clip(y1, height), _clip(x2, width), _clip(y2, height)]
    return FaceOut(
        image=image,
        box=[round(v, 2) for v in box],
        box_normalized=[
            round(box[0] / width, 4),
            round(box[1] / height, 4),
            round(box[2] / width, 4),
            round(box[3] / height, 4),
        ],
        landmarks={
            name: [round(float(x), 2), round(float(y), 2)]
            for name, (x, y) in zip(LANDMARK_NAMES, result.face.landmarks, strict=True)
        },
        detection_score=round(result.face.score, 4),
        faces_found=result.faces_found,
        image_size=ImageSize(width=width, height=height),
        quality=quality_out(result.quality),
        crop_png=_png_base64(result.crop) if include_crop and result.crop is not None else None,
    )


def _png_base64(pixels) -> str:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def model_info(model: ModelRef) -> ModelInfo:
    return ModelInfo(name=model.name, version=model.version)


def timing(started: float, timings: Timings, search: float | None = None) -> TimingMs:
    return TimingMs(
        total=round((time.perf_counter() - started) * 1000, 2),
        search=None if search is None else round(search * 1000, 2),
        **timings.as_ms(),
    )


def _clip(value: float, limit: int) -> float:
    return min(max(float(value), 0.0), float(limit))


def quality_out(quality: FaceQuality | None) -> QualityOut:
    if quality is None:
        raise ValueError("the face was analysed without its quality")
    return QualityOut(
        score=round(quality.score, 3),
        size=round(quality.scores["size"], 3),
        sharpness=round(quality.scores["sharpness"], 3),
        pose=round(quality.scores["pose"], 3),
        exposure=round(quality.scores["exposure"], 3),
        inter_ocular_px=round(quality.inter_ocular, 1),
        box_side_px=round(quality.box_side, 1),
        laplacian_ratio=round(quality.sharpness, 4),
        yaw=round(quality.yaw, 1),
        pitch=round(quality.pitch, 1),
        brightness=round(quality.brightness, 3),
        clipped=round(quality.clipped, 4),
    )
