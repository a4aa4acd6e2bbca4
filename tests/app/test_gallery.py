"""The galleries, with synthetic unit vectors: the in-memory one on SQLite and PostgreSQL (best match per
identity, ranking, thresholds, the model filter, catching up through the change log or by reloading),
and both backends side by side where PostgreSQL has pgvector: the same answers as an exact search, the
model filter, writes searched at once."""

from __future__ import annotations

import os

import numpy as np
import pytest
from pgvector import Vector
from sqlalchemy import delete, text
from sqlalchemy.engine import make_url

from facever.app import crud
from facever.app.core.config import Settings
from facever.app.db.migrate import upgrade
from facever.app.db.models import VECTOR_DIM, GalleryChange
from facever.app.db.session import Database
from facever.app.db.vectors import INDEX, vector_dim
from facever.app.gallery import Gallery
from facever.app.gallery_backend import open_gallery
from facever.app.pgvector_gallery import SEARCH, PgvectorGallery
from facever.app.stored_embeddings import ModelRef, TemplateCodec
from facever.model.matching import TemplateIndex, best_per_identity

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


# -- both backends: the in-memory gallery and pgvector's -------------------------------------------

VDIM = VECTOR_DIM  # the vector column's size: pgvector only holds templates of this size


@pytest.fixture(scope="module", params=["memory", "pgvector"])
def backend(request, database) -> str:
    if request.param == "pgvector" and vector_dim(database.engine) != VDIM:
        if database.backend == "postgresql" and os.environ.get("FACEVER_TEST_REQUIRE_PGVECTOR") == "1":
            pytest.fail("PostgreSQL has no faces.embedding_vector: pgvector is not installed")
        pytest.skip("pgvector: PostgreSQL with the vector extension only")
    return request.param


def open_backend(backend: str, database: Database, model: ModelRef = CURRENT, ef_search: int = 40):
    settings = Settings(gallery=backend, hnsw_ef_search=ef_search)
    gallery = open_gallery(settings, database, model, VDIM)
    gallery.sync()
    return gallery


def unit128(rng: np.random.Generator, n: int) -> np.ndarray:
    vectors = rng.normal(size=(n, VDIM)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def near(rng: np.random.Generator, vector: np.ndarray, noise: float) -> np.ndarray:
    probe = vector + rng.normal(0, noise, VDIM).astype(np.float32)
    return probe / np.linalg.norm(probe)


def test_the_backend_is_the_one_asked_for(backend, database):
    gallery = open_backend(backend, database, ModelRef("facever-kind", "1"))
    assert isinstance(gallery, PgvectorGallery if backend == "pgvector" else Gallery)


def test_answers_equal_exact_search(backend, database):
    """Per-identity best match, ranking, threshold and scores as an exact search over the same
    templates finds them; on pgvector, through the HNSW index (the plan is checked)."""
    rng = np.random.default_rng(10)
    model = ModelRef(f"facever-exact-{backend}", "1")
    identities = [new_identity(database, f"exact {i}") for i in range(300)]
    vectors = unit128(rng, 900)
    face_ids = []
    for i, identity in enumerate(identities):
        face_ids += add(database, identity, vectors[3 * i : 3 * i + 3], model)
    exact = TemplateIndex(VDIM)
    exact.replace(vectors, np.array(face_ids), np.repeat(identities, 3))
    gallery = open_backend(backend, database, model)
    assert gallery.size == 900 and gallery.identity_count == 300
    if backend == "pgvector":
        with database.engine.begin() as connection:
            connection.execute(text("ANALYZE faces"))
            plan = connection.execute(
                text("EXPLAIN " + SEARCH.text),
                {"probe": Vector(vectors[0]).to_text(), "model_name": model.name}
                | {"model_version": model.version, "candidates": 40, "top_k": 5},
            ).scalars()
            assert any(INDEX in line for line in plan)
    for i in range(0, 900, 30):
        probe = near(rng, vectors[i], 0.05)
        for top_k, min_score in ((5, None), (1, None), (10, 0.2), (5, 0.99)):
            got, expected = gallery.search(probe, top_k, min_score), exact.search(probe, top_k, min_score)
            assert [(m.identity_id, m.face_id) for m in got] == [(m.identity_id, m.face_id) for m in expected]
            assert [m.score for m in got] == pytest.approx([m.score for m in expected], abs=1e-5)
        assert got == [] or got[0].score >= 0.99


def test_templates_of_another_model_are_never_compared(backend, database):
    """Even when the other model's templates are the probe's nearest by far, more of them than the
    HNSW search keeps (ef_search 40): the current model's best match is still found."""
    rng = np.random.default_rng(11)
    model, other = ModelRef(f"facever-filter-{backend}", "2"), ModelRef(f"facever-filter-{backend}", "1")
    target = unit128(rng, 1)[0]
    decoy = new_identity(database, "decoy of another model")
    add(database, decoy, np.stack([near(rng, target, 0.01) for _ in range(200)]), other)
    wanted = new_identity(database, "wanted")
    add(database, wanted, np.stack([near(rng, target, 0.3)]), model)
    add(database, new_identity(database, "someone else"), unit128(rng, 3), model)

    searched = through_the_index(database) if backend == "pgvector" else database
    gallery = open_backend(backend, searched, model)
    matches = gallery.search(target, 5, None)
    assert [m.identity_id for m in matches][0] == wanted
    assert decoy not in {m.identity_id for m in matches}
    assert gallery.size == 4 and gallery.identity_count == 2
    if searched is not database:
        searched.dispose()


def through_the_index(database: Database) -> Database:
    """The same PostgreSQL database, on connections whose planner avoids sorting (enable_sort off), so
    that even a small table is searched through the HNSW index as a large one is."""
    url = make_url(database.url)
    options = f"{url.query['options']} -cenable_sort=off"
    return Database(url.update_query_dict({"options": options}).render_as_string(hide_password=False))


def test_writes_are_searched_at_once(backend, database):
    """pgvector: no sync between a write and the search (the in-memory gallery catches up first)."""
    rng = np.random.default_rng(12)
    model = ModelRef(f"facever-writes-{backend}", "1")
    gallery = open_backend(backend, database, model)
    frank = new_identity(database, "frank")
    vectors = unit128(rng, 2)
    first, _second = add(database, frank, vectors, model)
    gallery.catch_up()
    assert gallery.search(vectors[0], 1, None)[0].face_id == first
    with database.sessions() as session:
        assert crud.delete_face(session, frank, first)
    gallery.catch_up()
    assert gallery.search(vectors[0], 1, None)[0].face_id != first
    with database.sessions() as session:
        assert crud.delete_identity(session, frank)
    gallery.catch_up()
    assert gallery.search(vectors[1], 5, None) == []
    gallery.after_write()
    assert gallery.size == 0


def test_pgvector_cannot_be_forced_without_the_column(sqlite_url):
    database = Database(sqlite_url)
    upgrade(sqlite_url, database.engine)
    with pytest.raises(RuntimeError, match="FACEVER_GALLERY=pgvector.*no faces.embedding_vector"):
        open_gallery(Settings(gallery="pgvector"), database, CURRENT, VDIM)
    assert isinstance(open_gallery(Settings(), database, CURRENT, VDIM), Gallery)  # auto
    database.dispose()


@pytest.mark.postgres
def test_encrypted_templates_enrolled_before_pgvector_are_searched_once_it_is_there():
    """The migration that adds the vector column holds no template key, so it leaves encrypted
    templates without a vector; the service fills them at start with its key ring."""
    from conftest import postgres_schema

    from facever.app.db.vector_schema import add_vector_column, drop_vector_column
    from facever.app.template_crypto import KeyRing

    codec = TemplateCodec(KeyRing.of(bytes(range(32))))
    rng = np.random.default_rng(21)
    vectors = unit128(rng, 3)
    with postgres_schema() as url:
        before = Database(url)
        upgrade(url, before.engine)
        if vector_dim(before.engine) != VDIM:
            before.dispose()
            pytest.skip("pgvector: PostgreSQL with the vector extension only")
        with before.engine.begin() as connection:
            drop_vector_column(connection)  # as a database migrated before pgvector was installed
        before.dispose()
        without_column = Database(url)
        identity = new_identity(without_column, "encrypted before pgvector")
        with without_column.sessions() as session:
            templates = [crud.NewTemplate(vector, 0.99) for vector in vectors]
            crud.add_templates(session, identity, CURRENT, templates, codec)
        with without_column.engine.begin() as connection:
            assert add_vector_column(connection)  # `facever db pgvector`: clear templates only
        without_column.dispose()
        database = Database(url)
        gallery = open_gallery(Settings(gallery="pgvector"), database, CURRENT, VDIM, codec)
        gallery.sync()
        matches = gallery.search(vectors[1], top_k=1, min_score=0.99)
        assert [m.identity_id for m in matches] == [identity]
        database.dispose()
