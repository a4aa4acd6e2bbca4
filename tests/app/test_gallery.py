"""The in-memory gallery on SQLite and PostgreSQL, with synthetic unit vectors: best match per identity,
ranking, thresholds, the model filter, and catching up through the change log or by reloading."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import delete

from facever.app import crud
from facever.app.db.migrate import upgrade
from facever.app.db.models import GalleryChange
from facever.app.db.session import Database
from facever.app.gallery import Gallery
from facever.app.stored_embeddings import ModelRef, TemplateCodec
from facever.model.matching import best_per_identity

DIM = 16
CURRENT = ModelRef("facever", "9.9.9")
OLDER = ModelRef("facever", "0.0.1")


def unit(rng: np.random.Generator, n: int) -> np.ndarray:
    vectors = rng.normal(size=(n, DIM)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def database(database_url) -> Database:
    database = Database(database_url)
    upgrade(database_url, database.engine)
    yield database
    database.dispose()


def add(database: Database, identity_id: int, vectors: np.ndarray, model: ModelRef = CURRENT) -> list[int]:
    with database.sessions() as session:
        faces = crud.add_templates(
            session,
            identity_id,
            model,
            [crud.NewTemplate(vector, 0.99) for vector in vectors],
            TemplateCodec(),
        )
    return [face.id for face in faces]


def new_identity(database: Database, name: str) -> int:
    with database.sessions() as session:
        return crud.create_identity(session, name, None, {}).id


def test_search_scores_each_identity_by_its_best_template(database):
    rng = np.random.default_rng(0)
    alice, bob, carol = (new_identity(database, name) for name in ("alice", "bob", "carol"))
    alice_vectors, bob_vectors = unit(rng, 3), unit(rng, 2)
    alice_faces = add(database, alice, alice_vectors)
    add(database, bob, bob_vectors)
    add(database, carol, unit(rng, 2), model=OLDER)  # another model: never compared

    gallery = Gallery(database, CURRENT, DIM)
    assert gallery.sync() is True
    assert gallery.size == 5 and gallery.identity_count == 2

    matches = gallery.search(alice_vectors[1], top_k=5, min_score=None)
    assert [m.identity_id for m in matches][0] == alice
    assert matches[0].face_id == alice_faces[1] and matches[0].score == pytest.approx(1.0, abs=1e-5)
    assert {m.identity_id for m in matches} == {alice, bob}
    assert matches[1].score == pytest.approx(float((bob_vectors @ alice_vectors[1]).max()), abs=1e-5)
    assert [m.identity_id for m in gallery.search(alice_vectors[1], top_k=1, min_score=None)] == [alice]
    assert [m.identity_id for m in gallery.search(alice_vectors[1], top_k=5, min_score=0.999)] == [alice]
    assert gallery.search(-alice_vectors[1], top_k=5, min_score=1.0) == []

    with database.sessions() as session:
        ids, templates = crud.templates_of(session, carol, CURRENT, DIM, TemplateCodec())
    assert ids == [] and templates.shape == (0, DIM)


def test_a_replica_catches_up_from_the_change_log(database):
    rng = np.random.default_rng(1)
    writer, reader = Gallery(database, CURRENT, DIM), Gallery(database, CURRENT, DIM)
    writer.sync()
    reader.sync()
    dave = new_identity(database, "dave")
    dave_vectors = unit(rng, 2)
    first, second = add(database, dave, dave_vectors)
    assert reader.sync() is True and reader.sync() is False
    assert reader.search(dave_vectors[0], 1, None)[0].identity_id == dave

    with database.sessions() as session:
        assert crud.delete_face(session, dave, first)
    reader.sync()
    assert reader.search(dave_vectors[0], 1, None)[0].face_id != first
    with database.sessions() as session:
        assert crud.delete_identity(session, dave)
    reader.sync()
    assert dave not in {m.identity_id for m in reader.search(dave_vectors[1], 100, None)}
    writer.sync()
    assert reader.version == writer.version and reader.size == writer.size


def test_a_replica_reloads_when_the_log_no_longer_reaches_back(database):
    rng = np.random.default_rng(2)
    reader = Gallery(database, CURRENT, DIM)
    reader.sync()
    erin = new_identity(database, "erin")
    vectors = unit(rng, 2)
    add(database, erin, vectors)
    with database.sessions() as session:  # as if pruned: the log starts after the reader's version
        session.execute(delete(GalleryChange))
        session.commit()
    assert reader.sync() is True
    assert reader.search(vectors[0], 1, None)[0].identity_id == erin
    fresh = Gallery(database, CURRENT, DIM)
    fresh.sync()
    assert fresh.size == reader.size and fresh.version == reader.version


@pytest.mark.parametrize("k", [1, 3, 10, 60])
def test_best_per_identity_matches_brute_force(k):
    rng = np.random.default_rng(k)
    scores = rng.normal(size=2000).astype(np.float32)
    identities = rng.integers(0, 50, size=2000)
    candidates = np.flatnonzero(scores > -0.5)
    chosen = best_per_identity(scores, identities, candidates, k)
    best = {}
    for index in candidates:
        identity = identities[index]
        if identity not in best or scores[index] > scores[best[identity]]:
            best[identity] = index
    expected = sorted(best.values(), key=lambda index: -scores[index])[:k]
    assert list(chosen) == expected


def test_a_face_id_is_never_given_twice(database):
    """The gallery's change log names faces by id, and encrypted templates are bound to theirs: a new
    face never takes the id of a deleted one, the newest included."""
    rng = np.random.default_rng(3)
    frank = new_identity(database, "frank")
    first, newest = add(database, frank, unit(rng, 2))
    with database.sessions() as session:
        assert crud.delete_face(session, frank, newest)
    (again,) = add(database, frank, unit(rng, 1))
    assert again > newest > first
