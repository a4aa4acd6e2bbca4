"""Cross-request batching in the service: concurrent verifies share embedding runs, and every answer
is the one the service gives without batching."""

from __future__ import annotations

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


def verify_all(client) -> list[tuple[int, dict]]:
    def one(i: int) -> tuple[int, dict]:
        first, second = PAIRS[i % len(PAIRS)]
        # every third request carries a photo without a face: it is announced to the batcher and
        # then never embeds, which must not hold the others up nor change their answers
        image2 = grey_image() if i % 3 == 2 else lfw(*second)
        response = client.post("/v1/verify", files=files(image1=lfw(*first), image2=image2), headers=VERIFY)
        body = response.json()
        return response.status_code, {k: body.get(k) for k in ("verified", "score", "error")}

    with ThreadPoolExecutor(CONCURRENT) as pool:
        return list(pool.map(one, range(CONCURRENT)))


def test_batched_answers_equal_unbatched_ones(start_app, sqlite_url):
    with start_app(sqlite_url, batch_window_ms=0) as client:
        assert client.app.state.service.analyser.batcher is None
        alone = verify_all(client)
    with start_app(sqlite_url, batch_window_ms=200, inference_workers=CONCURRENT) as client:
        batcher = client.app.state.service.analyser.batcher
        assert batcher is not None and client.get("/v1/info", headers=VERIFY).json()["batch_window_ms"] == 200
        batched = verify_all(client)
        runs, faces = batcher.batches, batcher.faces
    assert [status for status, _ in alone] == [200, 200, 422] * (CONCURRENT // 3)
    assert batched == alone
    assert faces == 2 * 8 + 4  # 8 verifies of two faces, 4 with one face embedded
    assert runs < CONCURRENT  # requests shared runs
