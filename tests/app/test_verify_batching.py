"""Cross-request batching in the service: concurrent verifies share embedding runs (and detection
runs), and every answer is the one the service gives without batching."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from service_samples import VERIFY, files, grey_image, lfw

PAIRS = [
    (("George_W_Bush", 7), ("George_W_Bush", 65)),
    (("George_W_Bush", 7), ("Serena_Williams", 1)),
    (("Serena_Williams", 2), ("Serena_Williams", 3)),
    (("Colin_Powell", 1), ("Colin_Powell", 2)),
    (("Tony_Blair", 1), ("Serena_Williams", 4)),
    (("Tony_Blair", 2), ("Tony_Blair", 3)),
]
CONCURRENT = 12


def all_in_flight(analyser, monkeypatch) -> None:
    """Hold every request, once announced to the batchers, until all CONCURRENT are: then they are
    concurrent by construction, not by the machine's timing (a loaded machine could otherwise serve
    them one after another, and no batch would be shared)."""
    barrier = threading.Barrier(CONCURRENT, timeout=120)
    for name in ("_detect_side_by_side", "_detect_together"):
        detect = getattr(analyser, name)

        def held(*args, _detect=detect, **kwargs):
            barrier.wait()
            return _detect(*args, **kwargs)

        monkeypatch.setattr(analyser, name, held)


def verify_all(client, broken: bool = False) -> list[tuple[int, dict]]:
    def one(i: int) -> tuple[int, dict]:
        first, second = PAIRS[i % len(PAIRS)]
        # every third request carries a photo without a face: it is announced to the batcher and
        # then never embeds, which must not hold the others up nor change their answers
        image2 = grey_image() if i % 3 == 2 else lfw(*second)
        if broken and i % 4 == 1:
            image2 = b"not an image"  # refused before detection: the batch goes on without it
        response = client.post("/v1/verify", files=files(image1=lfw(*first), image2=image2), headers=VERIFY)
        body = response.json()
        return response.status_code, {k: body.get(k) for k in ("verified", "score", "error")}

    with ThreadPoolExecutor(CONCURRENT) as pool:
        return list(pool.map(one, range(CONCURRENT)))


def test_batched_answers_equal_unbatched_ones(start_app, sqlite_url, monkeypatch):
    with start_app(sqlite_url, batch_window_ms=0) as client:
        assert client.app.state.service.analyser.batcher is None
        alone = verify_all(client)
    with start_app(sqlite_url, batch_window_ms=200, inference_workers=CONCURRENT) as client:
        all_in_flight(client.app.state.service.analyser, monkeypatch)
        batcher = client.app.state.service.analyser.batcher
        assert batcher is not None and client.get("/v1/info", headers=VERIFY).json()["batch_window_ms"] == 200
        batched = verify_all(client)
        runs, faces = batcher.batches, batcher.items
    assert [status for status, _ in alone] == [200, 200, 422] * (CONCURRENT // 3)
    assert batched == alone
    assert faces == 2 * 8 + 4  # 8 verifies of two faces, 4 with one face embedded
    assert runs < CONCURRENT  # requests shared runs


def test_photos_detected_in_batches_get_the_unbatched_answers(start_app, sqlite_url, monkeypatch):
    with start_app(sqlite_url) as client:
        assert client.app.state.service.analyser.detection_batcher is None
        alone = verify_all(client, broken=True)
    with start_app(sqlite_url, detection_batch_window_ms=200, inference_workers=CONCURRENT) as client:
        all_in_flight(client.app.state.service.analyser, monkeypatch)
        batcher = client.app.state.service.analyser.detection_batcher
        info = client.get("/v1/info", headers=VERIFY).json()
        assert batcher is not None and info["detection_batch_window_ms"] == 200
        batched = verify_all(client, broken=True)
        runs, photos = batcher.batches, batcher.items
    codes = [body["error"]["code"] if status != 200 else "ok" for status, body in alone]
    assert codes.count("ok") >= 4 and {"no_face", "not_an_image"} <= set(codes)
    assert batched == alone
    assert photos == 2 * CONCURRENT - 3  # the 3 undecodable photos never reach detection
    assert runs < CONCURRENT


def test_with_detection_on_a_gpu_a_request_s_photos_are_detected_together(start_app, sqlite_url, monkeypatch):
    with start_app(sqlite_url) as client:
        alone = verify_all(client, broken=True)
        detector = client.app.state.service.pipeline.detector
        # as on CUDA: one detect_many call a request, and every network run padded to a power of two
        monkeypatch.setattr(detector, "on_gpu", True)
        sizes = []
        detect_many = detector.detect_many

        def recorded(images):
            sizes.append(len(images))
            return detect_many(images)

        monkeypatch.setattr(detector, "detect_many", recorded)
        together = verify_all(client, broken=True)
    assert together == alone
    assert sorted(sizes) == sorted(1 if i % 4 == 1 else 2 for i in range(CONCURRENT))
