"""Detection recall beyond LFW-like framing: faces that fill the frame, already-cropped faces, and faces
under dark, one-sided light."""

import hashlib

import numpy as np
import pytest
from PIL import Image

from facever.model import detection
from facever.model.alignment import DLIB_CHIP_150, TEMPLATE_112, align, template
from facever.model.detection import DetectorConfig, FaceDetector, equalized_luminance
from facever.model.images import read_image

KEYS = [
    "Aaron_Eckhart/Aaron_Eckhart_0001",
    "Serena_Williams/Serena_Williams_0003",
    "Tony_Blair/Tony_Blair_0002",
]


@pytest.fixture(scope="module")
def detectors():
    return (
        FaceDetector(DetectorConfig(), device="cpu", threads=1),
        FaceDetector(DetectorConfig(retry_margin=0, equalize=False), device="cpu", threads=1),
    )


def aligned_crops(lfw_image, detector, points, side):
    crops = []
    for key in KEYS:
        image = read_image(lfw_image(key))
        crops.append((align(image, detector.detect(image)[0].landmarks, points, side), points))
    return crops


@pytest.mark.parametrize("layout", ["arcface-112", "arcface-112-tight", "dlib-150"])
def test_an_already_aligned_crop_is_found_with_its_landmarks_in_place(layout, lfw_image, detectors):
    with_retry, first_pass_only = detectors
    points, side = {
        "arcface-112": (template(112), 112),
        "arcface-112-tight": (template(112, zoom=1.6), 112),  # the face fills the whole crop
        "dlib-150": (DLIB_CHIP_150, 150),
    }[layout]
    missed_by_first_pass = 0
    for crop, target in aligned_crops(lfw_image, with_retry, points, side):
        faces = with_retry.detect(crop)
        assert faces, "a face-filling crop must be found"
        # landmarks come back in the crop's own pixels: the eyes where the crop put them (within 7 %
        # of the side: the equalised copies of photo and crop differ; a face part would be off by 20 %)
        assert np.abs(faces[0].landmarks[:2] - target[:2]).max() < 0.07 * side
        missed_by_first_pass += not first_pass_only.detect(crop)
    if layout == "arcface-112-tight":
        # MTCNN alone misses a face with no room around it: the framed second pass finds it
        assert missed_by_first_pass == len(KEYS)


def test_a_face_filling_photo_is_found(lfw_image, detectors):
    with_retry, _ = detectors
    image = read_image(lfw_image(KEYS[0]))
    x1, y1, x2, y2 = (int(v) for v in with_retry.detect(image)[0].box)
    close_up = np.asarray(Image.fromarray(image[y1:y2, x1:x2]).resize((400, 400), Image.BICUBIC))
    faces = with_retry.detect(close_up)
    assert len(faces) >= 1
    assert faces[0].box[2] - faces[0].box[0] > 200  # the face is most of the picture


def test_no_face_is_still_no_face(detectors):
    with_retry, _ = detectors
    rng = np.random.default_rng(0)
    assert with_retry.detect(np.full((200, 300, 3), 90, np.uint8)) == []
    assert with_retry.detect(rng.integers(0, 255, (120, 120, 3), dtype=np.uint8)) == []


def test_grey_and_rgb_input_give_the_same_faces(lfw_image, detectors):
    with_retry, _ = detectors
    rgb = read_image(lfw_image(KEYS[1]))
    grey = rgb[:, :, 0].copy()  # the LFW copy is grayscale: R = G = B
    a, b = with_retry.detect(rgb), with_retry.detect(grey)
    assert len(a) == len(b) and np.allclose(a[0].landmarks, b[0].landmarks)


# LFW photos whose darkened, side-lit face-filling crop (as bench/proxies.py makes them) both MTCNN
# passes miss; the retry on the luminance-equalised copy finds them.
DARK_KEYS = [
    "Aaron_Guiel/Aaron_Guiel_0001",
    "Abdullah_al-Attiyah/Abdullah_al-Attiyah_0001",
    "Adolfo_Rodriguez_Saa/Adolfo_Rodriguez_Saa_0001",
]


def side_lit(rgb: np.ndarray, landmarks: np.ndarray, key: str) -> tuple[np.ndarray, np.ndarray]:
    """A 168x192 greyscale crop filled by the face, gamma 2.2, lit from one side down to 10 %; and
    where its eyes are."""
    points = template(112) * 1.5 + (12.0, 0.0)
    grey = np.asarray(Image.fromarray(align(rgb, landmarks, points, 192)[:, 12:180]).convert("L")) / 255.0
    ramp = np.linspace(1.0, 0.1, grey.shape[1])
    if hashlib.sha256(key.encode()).digest()[0] % 2:
        ramp = ramp[::-1]
    lit = np.round(255 * (grey * ramp) ** 2.2).astype(np.uint8)
    return np.repeat(lit[..., None], 3, axis=2), points[:2] - (12.0, 0.0)


def test_a_dark_side_lit_face_is_found_on_the_equalised_copy(lfw_image, detectors):
    with_retry, _ = detectors
    plain_only = FaceDetector(DetectorConfig(equalize=False), device="cpu", threads=1)
    for key in DARK_KEYS:
        image = read_image(lfw_image(key))
        dark, eyes = side_lit(image, with_retry.detect(image)[0].landmarks, key)
        assert plain_only.detect(dark) == [], key  # both passes on the image itself miss it
        faces = with_retry.detect(dark)
        assert len(faces) == 1, key
        assert np.abs(faces[0].landmarks[:2] - eyes).max() < 0.06 * 168, key  # the face, not a part


def test_faces_are_placed_on_the_equalised_copy(lfw_image, detectors):
    """The boxes and landmarks are those MTCNN finds on the copy with its luminance equalised (they
    land better there: bench/equalise.py); the image's own faces differ."""
    default, _ = detectors
    plain_only = FaceDetector(DetectorConfig(equalize=False), device="cpu", threads=1)
    image = read_image(lfw_image(DARK_KEYS[0]))
    faces = default.detect(image)
    on_copy = plain_only.detect(equalized_luminance(image))
    assert len(faces) == len(on_copy) >= 1
    for ours, theirs in zip(faces, on_copy, strict=True):
        assert ours.box == theirs.box and np.array_equal(ours.landmarks, theirs.landmarks)
    assert not np.array_equal(faces[0].landmarks, plain_only.detect(image)[0].landmarks)


def test_a_face_part_in_a_face_filling_crop_gives_way_to_the_whole_face(lfw_image, detectors):
    """A 168x192 grey crop nearly filled by the face (bench/parts.py's zoom 2.0): MTCNN's first pass as
    published (every P-Net candidate above 0.6, black past the edge) takes a part of the face for it; the
    part check runs the framed pass and keeps the whole face. The default first pass finds it too."""
    default, _ = detectors
    published = {"pnet_first": 0.6, "crop_fill_mean": False}
    without_check = FaceDetector(
        DetectorConfig(part_check_coverage=0.0, **published), device="cpu", threads=1
    )
    with_check = FaceDetector(DetectorConfig(**published), device="cpu", threads=1)
    image = read_image(lfw_image("Abdel_Madi_Shabneh/Abdel_Madi_Shabneh_0001"))
    points = ((TEMPLATE_112 - 56) * 2.0 + 56) * 1.5 + (12.0, 0.0)
    square = align(image, default.detect(image)[0].landmarks, points, 192)[:, 12:180]
    crop = np.repeat(np.asarray(Image.fromarray(square).convert("L"))[..., None], 3, axis=2)
    truth = points - (12.0, 0.0)
    eyes = np.hypot(*(truth[1] - truth[0]))

    def error(faces):
        return np.linalg.norm(faces[0].landmarks - truth, axis=1).mean() / eyes

    part = without_check.detect(crop)
    assert part and error(part) > 0.5  # a part: its landmarks are off by over half the eye distance
    x1, y1, x2, y2 = part[0].box
    assert (x2 - x1) * (y2 - y1) < 0.15 * 168 * 192
    for detector in (with_check, default):
        faces = detector.detect(crop)
        assert faces and error(faces) < 0.2


def varied_photos(lfw_image) -> list[np.ndarray]:
    """Photos of several sizes and kinds: as taken, a face-filling crop (the framed second pass), a dark
    copy (the plain image after its equalised copy), enlarged (reduced to max_side), an odd-sided one."""
    photos = []
    for key in KEYS:
        image = read_image(lfw_image(key))
        height, width = image.shape[:2]
        photos += [
            image,
            np.ascontiguousarray(image[height // 4 : 3 * height // 4, width // 4 : 3 * width // 4]),
            (image.astype(np.float32) * 0.25).astype(np.uint8),
            np.asarray(Image.fromarray(image).resize((width * 4, height * 3))),
            np.ascontiguousarray(image[3:, 7:]),
        ]
    return photos


def same_faces(a: list, b: list) -> bool:
    return len(a) == len(b) and all(
        x.box == y.box and np.array_equal(x.landmarks, y.landmarks) and x.score == y.score
        for x, y in zip(a, b, strict=True)
    )


@pytest.mark.parametrize("canvas", [(), (256, 512, 800)], ids=["own-sizes", "canvas"])
def test_photos_detected_together_get_exactly_the_faces_each_gets_alone(canvas, lfw_image, detectors):
    alone, _ = detectors
    together = FaceDetector(DetectorConfig(canvas=canvas), device="cpu", threads=1)
    photos = varied_photos(lfw_image)
    expected = [alone.detect(photo) for photo in photos]
    assert sum(bool(faces) for faces in expected) >= len(photos) - 2  # the photos do show faces
    found = together.detect_many(photos)
    assert all(same_faces(a, b) for a, b in zip(expected, found, strict=True))
    assert together.detect_many([]) == []


def test_the_canvas_mask_keeps_each_image_s_own_pnet_cells():
    """P-Net on an image placed in a larger canvas, with the mask, gives the image's own cells
    exactly, also where an odd side makes the pooling pad the last cell (and without the mask it
    does not: the canvas would move faces at the edges)."""
    masked = FaceDetector(DetectorConfig(canvas=(64,)), device="cpu", threads=1)
    rng = np.random.default_rng(0)
    mismatched_without_mask = 0
    for height, width in [(12, 12), (13, 20), (27, 33), (40, 41), (53, 64)]:
        image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        plain = np.asarray(Image.fromarray(image))  # its own size, no mask
        own = masked._pnet_session.run(
            None,
            {
                "input_1": detection._network_input(plain.transpose(1, 0, 2)[None]),
                "mask": np.zeros((1, 1, width - 2, height - 2), np.float32),
            },
        )
        ((heat, offsets),) = masked._pnet([image], (64, 64))
        assert heat.shape == (detection._pnet_cells(height), detection._pnet_cells(width))
        assert np.array_equal(heat, own[1][0, :, :, 1].T)
        assert np.array_equal(offsets, own[0][0].transpose(1, 0, 2))
        canvas = np.zeros((1, 64, 64, 3), np.uint8)
        canvas[0, :height, :width] = image
        unmasked = masked._pnet_session.run(
            None,
            {
                "input_1": detection._network_input(canvas.transpose(0, 2, 1, 3)),
                "mask": np.zeros((1, 1, 62, 62), np.float32),
            },
        )
        mismatched_without_mask += not np.array_equal(
            heat, unmasked[1][0, : heat.shape[1], : heat.shape[0], 1].T
        )
    assert mismatched_without_mask >= 3  # the odd sides


def test_on_cuda_p_net_runs_on_canvases_up_to_max_side():
    from facever.model import runtime

    assert runtime.detector_config_for(DetectorConfig(), "cuda").canvas == (256, 512, 800)
    assert runtime.detector_config_for(DetectorConfig(max_side=400), "cuda").canvas == (256, 400)
    assert runtime.detector_config_for(DetectorConfig(canvas=(640,)), "cuda").canvas == (640,)
    assert runtime.detector_config_for(DetectorConfig(), "cpu").canvas == ()


def test_mirrored_landmarks_are_mirrored_back_about_the_crop_s_centre():
    """For a crop that is its own mirror image, O-Net answers the same for both, so the averaged
    landmarks must be symmetric about the box's centre: eyes and mouth corners as mirror pairs, the nose
    on the axis. A wrong flip axis, order of the points or centre breaks it."""
    detector = FaceDetector(DetectorConfig(mirror_landmarks=True), device="cpu", threads=1)
    half = np.random.default_rng(3).uniform(-1, 1, (2, 24, 48, 3)).astype(np.float32)
    crops = np.ascontiguousarray(np.concatenate([half, half[:, ::-1]], axis=1))  # (N, x, y, 3), x mirrored
    boxes = np.array([[10.0, 20.0, 109.0, 119.0], [3.0, 0.0, 50.0, 47.0]])
    own = detection._landmarks_in_image(detector._onet.run(None, {"input_3": crops})[1], boxes)
    [(_, _, averaged, _)] = detector._with_mirrored_landmarks(crops, [(None, boxes, own, np.arange(2))])
    axis = boxes[:, 0] + boxes[:, 2]
    x, y = averaged[:, :5], averaged[:, 5:]
    np.testing.assert_allclose(x[:, 0] + x[:, 1], axis, atol=1e-4)  # the eyes
    np.testing.assert_allclose(x[:, 3] + x[:, 4], axis, atol=1e-4)  # the mouth corners
    np.testing.assert_allclose(2 * x[:, 2], axis, atol=1e-4)  # the nose
    np.testing.assert_allclose(y[:, 0], y[:, 1], atol=1e-4)
    np.testing.assert_allclose(y[:, 3], y[:, 4], atol=1e-4)
    assert not np.allclose(averaged, own, atol=0.5)  # O-Net's own answer for this crop is not symmetric


def test_a_face_filling_the_frame_is_found_again_with_room_around_it(lfw_image):
    """A tight crop (the face covers ~60 % of it) gets the framed pass's face, the same face placed
    anew; an ordinary photo (the face covers ~20 %) is left as the first pass found it."""
    reframing = FaceDetector(DetectorConfig(reframe_coverage=0.4), device="cpu", threads=1)
    as_found = FaceDetector(DetectorConfig(reframe_coverage=0.0), device="cpu", threads=1)
    for key in KEYS:
        image = read_image(lfw_image(key))
        [kept], [found] = reframing.detect(image), as_found.detect(image)
        assert kept.box == found.box and np.array_equal(kept.landmarks, found.landmarks)
        tight = align(image, as_found.detect(image)[0].landmarks, template(112), 112)
        [first], [again] = as_found.detect(tight), reframing.detect(tight)
        assert first.area > 0.4 * 112 * 112
        assert not np.array_equal(again.landmarks, first.landmarks)
        assert detection._iou(again, first) >= 0.5
        assert np.abs(again.landmarks - first.landmarks).max() < 0.15 * 112


def _nms_one_box_at_a_time(boxes, threshold, by_min=False):
    """Greedy non-maximum suppression as MTCNN's reference code writes it."""
    x1, y1, x2, y2, scores = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3], boxes[:, 4]
    areas = (x2 - x1 + 1) * (y2 - y1 + 1)
    order, keep = np.argsort(scores)[::-1], []
    while len(order):
        best, rest = order[0], order[1:]
        keep.append(best)
        w = np.maximum(0.0, np.minimum(x2[best], x2[rest]) - np.maximum(x1[best], x1[rest]) + 1)
        h = np.maximum(0.0, np.minimum(y2[best], y2[rest]) - np.maximum(y1[best], y1[rest]) + 1)
        union = np.minimum(areas[best], areas[rest]) if by_min else areas[best] + areas[rest] - w * h
        order = rest[w * h / union <= threshold]
    return keep


@pytest.mark.parametrize("count", [1, 40, detection.NMS_ALL_PAIRS + 100])
@pytest.mark.parametrize("by_min", [False, True])
def test_nms_keeps_what_suppressing_one_box_at_a_time_keeps(count, by_min):
    # Clustered boxes, so that many overlap; beyond NMS_ALL_PAIRS the overlaps are computed a row at a time.
    rng = np.random.default_rng(count)
    corners = rng.uniform(0, 200, (count, 2)) // 4 * 4
    sides = rng.uniform(10, 60, (count, 1)) // 2 * 2
    boxes = np.column_stack([corners, corners + sides, rng.uniform(0.6, 1.0, count)])
    kept = detection._nms(boxes, 0.5, by_min)
    assert kept.tolist() == _nms_one_box_at_a_time(boxes, 0.5, by_min)
    assert 0 < len(kept) <= count


@pytest.mark.parametrize("fill_mean", [True, False])
def test_a_crop_past_the_photo_s_edge_is_filled_with_its_mean_colour_or_black(fill_mean):
    pixels = np.zeros((40, 40, 3), np.uint8)
    pixels[:, :20] = (10, 20, 30)
    pixels[:, 20:] = (200, 100, 50)
    box = np.array([[-20.0, 0.0, 19.0, 39.0, 0.9]])  # 40x40, its left half past the left edge
    crop = detection._crops(Image.fromarray(pixels), box, 40, fill_mean)[0]  # (x, y, 3), network input
    as_pixels = np.rint(crop / 0.0078125 + 127.5).astype(int)
    outside = (105, 60, 40) if fill_mean else (0, 0, 0)
    assert (as_pixels[:20] == outside).all()
    assert (as_pixels[20:] == (10, 20, 30)).all()


def test_where_p_net_s_strong_candidates_give_no_face_its_weaker_ones_are_tried(lfw_image):
    # pnet_first above every score: no strong candidate at all, so every photo takes the second step,
    # which gives exactly what R-Net and O-Net find among all of P-Net's candidates.
    one_step = FaceDetector(DetectorConfig(pnet_first=0.6), device="cpu", threads=1)
    two_steps = FaceDetector(DetectorConfig(pnet_first=1.01), device="cpu", threads=1)
    for key in KEYS:
        image = read_image(lfw_image(key))
        expected, got = one_step.detect(image), two_steps.detect(image)
        assert expected and [f.box for f in got] == [f.box for f in expected]
        assert all(np.array_equal(a.landmarks, b.landmarks) for a, b in zip(got, expected, strict=True))


@pytest.mark.parametrize(
    ("name", "shape"), [("pnet", (2, 75, 61, 3)), ("rnet", (8, 24, 24, 3)), ("onet", (3, 48, 48, 3))]
)
def test_mtcnn_with_prelu_split_answers_exactly_as_shipped(name, shape):
    import onnxruntime

    shipped = onnxruntime.InferenceSession(
        str(detection._model_path(name)), providers=["CPUExecutionProvider"]
    )
    split_graph = detection.mtcnn_graph(name, split_prelu=True)
    split = onnxruntime.InferenceSession(split_graph, providers=["CPUExecutionProvider"])
    assert b"PRelu" not in split_graph and b"PRelu" in detection.mtcnn_graph(name)
    # activations of both signs, zeros among them
    crops = np.random.default_rng(5).uniform(-1, 1, shape).astype(np.float32)
    crops[:, ::7] = 0
    feed = {shipped.get_inputs()[0].name: crops}
    for expected, got in zip(shipped.run(None, feed), split.run(None, feed), strict=True):
        np.testing.assert_array_equal(got, expected)


def test_rnet_pooled_channels_padded_to_whole_blocks():
    """R-Net's first convolution (28 filters) gains four zero filters so that its pooling stays in
    onnxruntime's blocked layout; P-Net's (10, fewer than a block) and O-Net's (32) keep theirs."""
    import onnx

    def first_filters(name: str) -> int:
        model = onnx.load_from_string(detection.mtcnn_graph(name, split_prelu=True))
        weights = {tensor.name: tensor for tensor in model.graph.initializer}
        first = next(node for node in model.graph.node if node.op_type == "Conv")
        return int(weights[first.input[1]].dims[0])

    assert [first_filters(name) for name in ("pnet", "rnet", "onet")] == [10, 32, 32]


@pytest.mark.parametrize("from_previous", [False, True])
def test_pyramid_levels_resized_from_the_photo_or_the_level_before(from_previous, lfw_image):
    """P-Net sees each level area-averaged from the photo, or (``pyramid_from_previous``) from the level
    before it; either way it still finds the face."""
    detector = FaceDetector(
        DetectorConfig(equalize=False, retry_margin=0, pyramid_from_previous=from_previous), "cpu", 1
    )
    levels: list[np.ndarray] = []
    inner = detector._pnet

    def seen(scaled, shape):
        levels.extend(scaled)
        return inner(scaled, shape)

    detector._pnet = seen
    image = read_image(lfw_image(KEYS[0]))
    assert detector.detect(image)
    assert len(levels) >= 4 and levels[0].shape[0] > levels[-1].shape[0]
    photo = Image.fromarray(image)
    for before, level in zip(levels, levels[1:], strict=False):
        source = Image.fromarray(before) if from_previous else photo
        size = (level.shape[1], level.shape[0])
        np.testing.assert_array_equal(level, np.asarray(source.resize(size, Image.Resampling.BOX)))
