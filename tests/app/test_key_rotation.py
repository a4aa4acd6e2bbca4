"""``facever keys rotate-templates`` under load (issue 19, point 1): a real server keeps answering 8
clients that verify and identify, and enrolls, while the command re-encrypts every template; nothing
is lost, every answer is the one given before, and every row ends under the new key."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import httpx
import numpy as np
from governance_samples import KEY_A, KEY_A_BYTES, KEY_A_ID, KEY_B, KEY_B_ID
from live_server import LiveServer
from service_samples import VERIFY, create, enroll, lfw
from sqlalchemy import func, select

from facever.app import crud
from facever.app.db.models import Face
from facever.app.db.session import Database
from facever.app.stored_embeddings import ModelRef, TemplateCodec
from facever.app.template_crypto import KeyRing

CLIENTS = 8
SYNTHETIC_TEMPLATES = 4000  # enough rows for the rotation to take many transactions
PEOPLE = {
    "George W. Bush": [("George_W_Bush", n) for n in (1, 2, 3)],
    "Serena Williams": [("Serena_Williams", n) for n in (1, 2)],
}
PROBES = [("George_W_Bush", 10), ("Serena_Williams", 5)]


def seed_synthetic(database_url: str, model: ModelRef, dim: int) -> None:
    """Many templates of one identity under key A, written as the service writes them."""
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(SYNTHETIC_TEMPLATES, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    database = Database(database_url)
    try:
        with database.sessions() as session:
            filler = crud.create_identity(session, "synthetic", None, {}).id
        with database.sessions() as session:
            templates = [crud.NewTemplate(v, 0.99) for v in vectors]
            crud.add_templates(session, filler, model, templates, TemplateCodec(KeyRing.of(KEY_A_BYTES)))
    finally:
        database.dispose()


def keys_in_database(database_url: str) -> dict[str | None, int]:
    database = Database(database_url)
    try:
        with database.sessions() as session:
            return dict(session.execute(select(Face.key_id, func.count()).group_by(Face.key_id)).all())
    finally:
        database.dispose()


def ask(client: httpx.Client, identity_ids: dict[str, int], person: str, number: int) -> tuple:
    """One identity verify and one identify of a probe; the answers as comparable tuples."""
    image = {"image": (f"{person}.jpg", lfw(person, number))}
    answers = []
    for identity_id in identity_ids.values():
        response = client.post(f"/v1/identities/{identity_id}/verify", files=image)
        assert response.status_code == 200, response.text
        answers.append((response.json()["verified"], round(response.json()["score"], 4)))
    response = client.post("/v1/identify", files=image, data={"top_k": "3"})
    assert response.status_code == 200, response.text
    answers.append(tuple((m["identity"]["id"], round(m["score"], 4)) for m in response.json()["matches"]))
    return tuple(answers)


def test_rotation_under_load_loses_nothing_and_ends_under_the_new_key(
    database_url, start_app, pipeline, tmp_path
):
    model, dim = ModelRef.of(pipeline.card), pipeline.card.embedding_size
    with start_app(database_url, template_key=KEY_A) as before:  # the deployment under key A
        identity_ids = {name: create(before, name) for name in PEOPLE}
        for name, photos in PEOPLE.items():
            enroll(before, identity_ids[name], photos)
    seed_synthetic(database_url, model, dim)
    total = SYNTHETIC_TEMPLATES + sum(len(p) for p in PEOPLE.values())
    assert keys_in_database(database_url) == {KEY_A_ID: total}

    # Step 2 of the rotation: the service runs with the new key, the old one still readable.
    keys = {"template_key": KEY_B, "template_previous_keys": KEY_A}
    with LiveServer(tmp_path, database_url=database_url, inference_workers="2", **keys) as server:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            expected = {probe: ask(client, identity_ids, *probe) for probe in PROBES}

        rotating = threading.Event()
        stop = threading.Event()
        during, failures = [0] * CLIENTS, []
        enrolled: list[int] = []

        def load(index: int) -> None:
            probe = PROBES[index % len(PROBES)]
            with httpx.Client(base_url=server.url, timeout=60) as client:
                try:
                    while not stop.is_set():
                        if index == 0 and rotating.is_set() and not enrolled:  # one enrollment mid-rotation
                            identity = client.post("/v1/identities", json={"name": "Colin Powell"}).json()
                            files = [("images", ("p.jpg", lfw("Colin_Powell", 1)))]
                            response = client.post(f"/v1/identities/{identity['id']}/faces", files=files)
                            assert response.status_code == 201, response.text
                            enrolled.append(response.json()["results"][0]["face_id"])
                        answer = ask(client, identity_ids, *probe)
                        assert answer == expected[probe], (answer, expected[probe])
                        if rotating.is_set():
                            during[index] += 1
                except Exception as exc:  # noqa: BLE001 - reported by the test below
                    failures.append(repr(exc))

        threads = [threading.Thread(target=load, args=(i,)) for i in range(CLIENTS)]
        for thread in threads:
            thread.start()
        time.sleep(2)  # every client is asking
        env = {
            **os.environ,
            "FACEVER_DATABASE_URL": database_url,
            "FACEVER_TEMPLATE_KEY": KEY_B,
            "FACEVER_TEMPLATE_PREVIOUS_KEYS": KEY_A,
        }
        rotating.set()
        rotation = subprocess.run(
            [sys.executable, "-m", "facever.cli", "keys", "rotate-templates", "--batch", "50"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        while sum(during) < CLIENTS and not failures:  # at least as many answers as clients after it
            time.sleep(0.1)
        stop.set()
        for thread in threads:
            thread.join(timeout=120)
        assert rotation.returncode == 0, rotation.stderr
        assert failures == [], failures[:3]
        assert sum(during) >= CLIENTS and enrolled

        # Nothing lost: every template, the one enrolled meanwhile too, all under the new key.
        assert keys_in_database(database_url) == {KEY_B_ID: total + 1}
        assert "every stored template is under the current key" in rotation.stdout
        with httpx.Client(base_url=server.url, timeout=60) as client:
            assert client.get("/v1/info").json()["gallery"]["templates"] == total + 1
            for probe in PROBES:
                assert ask(client, identity_ids, *probe) == expected[probe]

    # Step 4: the old key can go.
    with start_app(database_url, template_key=KEY_B) as after:
        response = after.post(
            f"/v1/identities/{identity_ids['George W. Bush']}/verify",
            files={"image": ("b.jpg", lfw("George_W_Bush", 10))},
            headers=VERIFY,
        )
        assert response.status_code == 200 and response.json()["verified"] is True
