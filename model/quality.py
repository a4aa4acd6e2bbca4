"""Face quality: size, sharpness, pose and exposure of a detected face, and one overall score in [0, 1].

Computed from what the pipeline already has (the face's box and five landmarks, and the aligned crop
the embedding network sees), with numpy only: well under a millisecond a face.

- size: the inter-ocular distance and the box's shorter side, in pixels of the image given. The score
  uses the larger of the two on the scale of the inter-ocular distance (a turned head narrows the eyes).
- sharpness: the variance of the Laplacian of the grey crop's centre (eyes, nose, mouth) divided by the
  variance of the grey values themselves, so that it measures how much of the contrast is fine detail
  whatever the lighting. A face enlarged from a few pixels is soft too: it fails here as well.
- pose: yaw and pitch in degrees, estimated from the five landmarks with a rigid head whose nose tip
  stands out half an inter-ocular distance: yaw from the nose's offset from the line through the eye and
  mouth midpoints, pitch from where the nose falls between the eye line and the mouth line (positive
  when the face looks down). Rough beyond ~45 degrees, where the landmarks themselves are unreliable.
- exposure: the mean luma of the crop's centre (0..1) and the share of its pixels clipped to black or
  white.

Each aspect maps to a score in [0, 1] by a linear ramp (``RAMPS``, set from LFW and CFP photos: see
``bench/quality.py``); the overall score is the lowest of the four, so a face below a gate always has a
named reason (``FaceQuality.reason``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from facever.model.detection import DetectedFace
from facever.model.errors import ErrorCode
from facever.model.images import LUMA

# (value at which the score is 0, value at which it is 1); decreasing ramps have lo > hi.
RAMPS = {
    "size": (10.0, 30.0),  # inter-ocular distance in pixels (or the box's side / 2.5 if larger)
    "sharpness": (0.002, 0.014),  # Laplacian variance / grey variance of the crop's centre
    "pose": (60.0, 30.0),  # the larger of |yaw| and |pitch|, degrees
    "dark": (0.08, 0.22),  # mean luma
    "bright": (0.95, 0.8),  # mean luma
    "clipped": (0.5, 0.2),  # share of clipped pixels
}
REASONS = {
    "size": ErrorCode.FACE_TOO_SMALL,
    "sharpness": ErrorCode.TOO_BLURRED,
    "pose": ErrorCode.POSE_TOO_FAR,
    "exposure": ErrorCode.BADLY_EXPOSED,
}
# The nose tip's depth in front of the eyes and mouth, in inter-ocular distances (a rigid head model).
NOSE_DEPTH = 0.5
# Where the nose falls between the eye line (0) and the mouth line (1) on a frontal face (the template).
NOSE_FRONTAL = 0.494
BOX_PER_IOD = 2.5  # box side over inter-ocular distance on frontal LFW faces (about)
_LUMA = LUMA.astype(np.float32)


@dataclass(frozen=True)
class FaceQuality:
    inter_ocular: float  # pixels
    box_side: float  # pixels, the box's shorter side
    sharpness: float  # Laplacian variance / grey variance of the crop's centre
    yaw: float  # degrees, positive: the face turns towards the image's right
    pitch: float  # degrees, positive: the face looks down
    brightness: float  # mean luma of the crop's centre, 0..1
    clipped: float  # share of the crop's centre at black or white
    scores: dict[str, float]  # size, sharpness, pose, exposure, each 0..1
    score: float  # the lowest of ``scores``

    def reason(self, minimum: float) -> ErrorCode | None:
        """The reason code of the weakest aspect when the score is below ``minimum``; None when it passes."""
        if self.score >= minimum:
            return None
        return REASONS[min(self.scores, key=self.scores.__getitem__)]

    def describe(self) -> str:
        return (
            f"quality {self.score:.2f} (size {self.scores['size']:.2f}: inter-ocular distance "
            f"{self.inter_ocular:.0f} px; sharpness {self.scores['sharpness']:.2f}; pose "
            f"{self.scores['pose']:.2f}: yaw {self.yaw:.0f}, pitch {self.pitch:.0f} degrees; exposure "
            f"{self.scores['exposure']:.2f}: brightness {self.brightness:.2f}, clipped {self.clipped:.2f})"
        )


def ramp(value: float, lo: float, hi: float) -> float:
    return float(min(1.0, max(0.0, (value - lo) / (hi - lo))))


def pose(landmarks: np.ndarray) -> tuple[float, float]:
    """(yaw, pitch) in degrees from five landmarks (left eye, right eye, nose, mouth left, mouth right)."""
    points = np.asarray(landmarks, np.float64)
    eyes = (points[0] + points[1]) / 2
    mouth = (points[3] + points[4]) / 2
    axis = mouth - eyes
    height = float(np.hypot(*axis))
    if height < 1e-6:
        return 0.0, 0.0
    down = axis / height
    across = np.array([down[1], -down[0]])  # the image's right on an upright face
    iod = abs(float((points[1] - points[0]) @ across))
    nose = points[2] - eyes
    along = float(nose @ down) / height
    # the midline at the nose's height, between the eye and mouth midpoints
    offset = float(nose @ across) - along * float(axis @ across)
    # projected: offset = d sin(yaw), iod = w cos(yaw), d = NOSE_DEPTH * w
    yaw = math.degrees(math.atan2(offset, NOSE_DEPTH * max(iod, 1e-6)))
    # the nose's shift along the face, in nose depths (the eye-mouth distance is ~1.16 IODs frontally)
    pitch = math.degrees(math.atan((along - NOSE_FRONTAL) * 1.16 / NOSE_DEPTH))
    return yaw, pitch


def centre(crop: np.ndarray) -> np.ndarray:
    """The grey (luma) centre of an aligned crop, 0..1: eyes to mouth, little background."""
    size = crop.shape[0]
    a, b = int(size * 0.2), int(size * 0.8)
    part = crop[a:b, a:b].astype(np.float32)
    grey = part @ _LUMA if part.ndim == 3 else part
    return grey / 255.0


def sharpness(grey: np.ndarray) -> float:
    """Variance of the 4-neighbour Laplacian over the grey variance (0 for a flat patch)."""
    laplacian = grey[:-2, 1:-1] + grey[2:, 1:-1] + grey[1:-1, :-2] + grey[1:-1, 2:] - 4 * grey[1:-1, 1:-1]
    variance = float(grey.var())
    return float(laplacian.var()) / variance if variance > 1e-8 else 0.0


def assess(face: DetectedFace, crop: np.ndarray) -> FaceQuality:
    """The quality of ``face`` (box and landmarks in pixels of the image it was found in; the size is
    measured in those pixels) and of its aligned crop (S x S x 3 uint8, as the pipeline cuts it)."""
    landmarks = np.asarray(face.landmarks, np.float64)
    iod = float(np.hypot(*(landmarks[1] - landmarks[0])))
    x1, y1, x2, y2 = face.box
    box_side = float(max(0.0, min(x2 - x1, y2 - y1)))
    yaw, pitch = pose(landmarks)
    grey = centre(crop)
    sharp = sharpness(grey)
    brightness = float(grey.mean())
    clipped = float(((grey <= 5 / 255) | (grey >= 250 / 255)).mean())
    scores = {
        "size": ramp(max(iod, box_side / BOX_PER_IOD), *RAMPS["size"]),
        "sharpness": ramp(sharp, *RAMPS["sharpness"]),
        "pose": ramp(max(abs(yaw), abs(pitch)), *RAMPS["pose"]),
        "exposure": min(
            ramp(brightness, *RAMPS["dark"]),
            ramp(brightness, *RAMPS["bright"]),
            ramp(clipped, *RAMPS["clipped"]),
        ),
    }
    return FaceQuality(
        inter_ocular=iod,
        box_side=box_side,
        sharpness=sharp,
        yaw=yaw,
        pitch=pitch,
        brightness=brightness,
        clipped=clipped,
        scores=scores,
        score=min(scores.values()),
    )
