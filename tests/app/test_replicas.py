"""Two app instances (replicas, or the server processes of one replica) on one database: what one
enrolls or deletes, the other's identify sees as soon as it is committed (identify catches up with
the database before it searches); the poll (0.2 s in the tests, 0.5 s by default) keeps the copies
close in between."""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor

from service_samples import ADMIN, VERIFY, files, lfw

from facever.app import crud
from facever.app.pgvector_gallery import PgvectorGallery

# Generous, so that a loaded CI machine does not fail the test; a healthy replica needs one poll.
PATIENCE_S = 10.0


def wait_for(condition, patience: float = PATIENCE_S):
    deadline = time.monotonic() + patience
    while True:
        result = condition()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.05)


def matched_ids(client, photo) -> set[int]:
    response = client.post(
        "/v1/identify",
        files=files(image=lfw(*photo)),
        data={"include_below_threshold": "true", "top_k": "100"},
        headers=VERIFY,
    )
    assert response.status_code == 200, response.text
    return {match["identity"]["id"] for match in response.json()["matches"]}


def test_an_enrollment_on_one_replica_is_identified_on_the_other(database_url, start_app):
    with start_app(database_url) as first, start_app(database_url) as second:
        identity = first.post("/v1/identities", json={"name": "Colin Powell"}, headers=ADMIN).json()
        probe = ("Colin_Powell", 4)
        assert identity["id"] not in matched_ids(second, probe)

        images = [("images", (f"{n}.jpg", lfw("Colin_Powell", n))) for n in (1, 2)]
        enrolled = first.post(f"/v1/identities/{identity['id']}/faces", files=images, headers=ADMIN)
        assert enrolled.status_code == 201, enrolled.text
        assert identity["id"] in matched_ids(first, probe)  # the writer sees it at once
        assert wait_for(lambda: identity["id"] in matched_ids(second, probe))
        # The counts follow the poll (pgvector: the search reads the table; only the counts are held).
        assert wait_for(lambda: second.get("/v1/info", headers=VERIFY).json()["gallery"]["templates"] >= 2)

        # The other direction, for a deletion.
        assert second.delete(f"/v1/identities/{identity['id']}", headers=ADMIN).status_code == 204
        assert identity["id"] not in matched_ids(second, probe)
        assert wait_for(lambda: identity["id"] not in matched_ids(first, probe))


def test_identify_on_the_other_replica_reads_the_writes_at_once(database_url, start_app):
    """No poll between the write and the search (an hour's interval): identify's own catch-up finds it,
    so a client whose next request lands on another process of `facever serve` sees its enrollment."""
    hour = 3600.0
    with (
        start_app(database_url, gallery_poll_interval=hour) as first,
        start_app(database_url, gallery_poll_interval=hour) as second,
    ):
        identity = first.post("/v1/identities", json={"name": "Tony Blair"}, headers=ADMIN).json()
        probe = ("Tony_Blair", 4)
        assert identity["id"] not in matched_ids(second, probe)
        image = {"images": ("1.jpg", lfw("Tony_Blair", 1))}
        assert (
            first.post(f"/v1/identities/{identity['id']}/faces", files=image, headers=ADMIN).status_code
            == 201
        )
        assert identity["id"] in matched_ids(second, probe)  # at once: no wait_for
        assert first.delete(f"/v1/identities/{identity['id']}", headers=ADMIN).status_code == 204
        assert identity["id"] not in matched_ids(second, probe)


def test_replicas_agree_on_the_gallery_version(database_url, start_app):
    with start_app(database_url) as first, start_app(database_url) as second:
        identity = first.post("/v1/identities", json={"name": "Venus Williams"}, headers=ADMIN).json()
        for n in (1, 2, 3):
            image = {"images": (f"{n}.jpg", lfw("Venus_Williams", n))}
            assert (
                first.post(f"/v1/identities/{identity['id']}/faces", files=image, headers=ADMIN).status_code
                == 201
            )

        def gallery(client):
            return client.get("/v1/info", headers=VERIFY).json()["gallery"]

        assert wait_for(lambda: gallery(second) == gallery(first))


def test_concurrent_enrollments_on_two_replicas_all_land(database_url, start_app):
    """Writers on both replicas at once: every template is stored once and both galleries agree."""
    people = [("George_W_Bush", 10), ("Colin_Powell", 5), ("Serena_Williams", 3), ("Venus_Williams", 4)]
    with start_app(database_url) as first, start_app(database_url) as second:
        replicas = [first, second]

        def enroll(job: int) -> tuple[int, int]:
            client = replicas[job % 2]
            person, number = people[job % len(people)]
            identity = client.post("/v1/identities", json={"name": f"{person} {job}"}, headers=ADMIN).json()
            images = [("images", (f"{n}.jpg", lfw(person, n))) for n in (number, number + 1)]
            response = client.post(f"/v1/identities/{identity['id']}/faces", files=images, headers=ADMIN)
            assert response.status_code == 201, response.text
            return identity["id"], response.json()["enrolled"]

        with ThreadPoolExecutor(max_workers=8) as pool:
            enrolled = list(pool.map(enroll, range(8)))
        assert all(count == 2 for _, count in enrolled)

        def gallery(client):
            return client.get("/v1/info", headers=VERIFY).json()["gallery"]

        assert wait_for(lambda: gallery(first) == gallery(second))
        service = first.app.state.service
        with service.session() as session:
            stored = crud.face_counts(session, [identity_id for identity_id, _ in enrolled], service.model)
        assert all(current == 2 for current, _ in stored.values())
        assert gallery(second)["templates"] >= 16


def test_a_deletion_is_never_answered_afterwards(database_url, start_app):
    """While one replica identifies without pause, the other deletes the identity: no identify that
    started after the delete returned names it (the poll is an hour: nothing but the search itself
    can keep it out). With pgvector, the replicas hold no gallery at all."""
    hour = 3600.0
    with (
        start_app(database_url, gallery_poll_interval=hour) as first,
        start_app(database_url, gallery_poll_interval=hour) as second,
    ):
        if os.environ.get("FACEVER_TEST_REQUIRE_PGVECTOR") == "1" and "postgresql" in database_url:
            assert isinstance(second.app.state.service.gallery, PgvectorGallery)
        identity = first.post("/v1/identities", json={"name": "Gerhard Schroeder"}, headers=ADMIN).json()
        image = {"images": ("1.jpg", lfw("Gerhard_Schroeder", 1))}
        assert (
            first.post(f"/v1/identities/{identity['id']}/faces", files=image, headers=ADMIN).status_code
            == 201
        )
        probe = ("Gerhard_Schroeder", 2)
        assert identity["id"] in matched_ids(second, probe)

        deleted_at = []
        answers: list[tuple[float, bool]] = []  # (when the identify started, whether it named the identity)

        def identify_until_deleted() -> None:
            while not deleted_at or len([t for t, _ in answers if t > deleted_at[0]]) < 3:
                started = time.monotonic()
                answers.append((started, identity["id"] in matched_ids(second, probe)))

        with ThreadPoolExecutor(max_workers=1) as pool:
            running = pool.submit(identify_until_deleted)
            time.sleep(0.3)
            assert first.delete(f"/v1/identities/{identity['id']}", headers=ADMIN).status_code == 204
            deleted_at.append(time.monotonic())
            running.result(timeout=60)
        assert any(named for _, named in answers)  # it was found before
        assert not any(named for started, named in answers if started > deleted_at[0])
