"""Everything a request needs, built once when the app starts and kept on ``app.state.service``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import anyio
from sqlalchemy.orm import Session

from facever.app.analysis import FaceAnalyser
from facever.app.auth import Authenticator
from facever.app.core.config import MultiFacePolicy, Settings
from facever.app.db.session import Database
from facever.app.gallery_backend import GalleryBackend
from facever.app.stored_embeddings import ModelRef, TemplateCodec
from facever.model.runtime import FacePipeline

T = TypeVar("T")


@dataclass
class Service:
    settings: Settings
    database: Database
    pipeline: FacePipeline
    analyser: FaceAnalyser
    gallery: GalleryBackend
    authenticator: Authenticator
    codec: TemplateCodec  # stored templates, encrypted or in clear

    @property
    def model(self) -> ModelRef:
        return ModelRef.of(self.pipeline.card)

    @property
    def dim(self) -> int:
        return self.pipeline.card.embedding_size

    @property
    def threshold(self) -> float:
        """The service's decision threshold: FACEVER_THRESHOLD, else the model card's."""
        if self.settings.threshold is not None:
            return self.settings.threshold
        return self.pipeline.card.threshold

    def threshold_for(self, requested: float | None) -> float:
        return self.threshold if requested is None else requested

    @property
    def identify_threshold(self) -> float:
        """1:N identify's threshold: FACEVER_IDENTIFY_THRESHOLD, else the card's (stricter than verify's:
        a probe meets every enrolled person, each a chance of a false match), else the verify one."""
        if self.settings.identify_threshold is not None:
            return self.settings.identify_threshold
        card = self.pipeline.card
        return card.identify_threshold if card.identify_threshold is not None else self.threshold

    def probability(self, score: float) -> float | None:
        """The model card's calibrated probability that a pair scoring ``score`` is the same person (at an
        equal prior of same and different pairs); None when the card has no probability map."""
        mapping = self.pipeline.card.probability
        return None if mapping is None else mapping(score)

    def identify_threshold_for(self, requested: float | None) -> float:
        return self.identify_threshold if requested is None else requested

    def policy_for(self, requested: MultiFacePolicy | None) -> MultiFacePolicy:
        return requested or self.settings.multi_face_policy

    async def in_session(self, function: Callable[..., T], *args) -> T:
        """Run ``function(session, *args)`` in a worker thread with a fresh database session."""

        def work() -> T:
            with self.database.sessions() as session:
                return function(session, *args)

        return await anyio.to_thread.run_sync(work)

    async def sync_gallery(self) -> None:
        """The poll: follow other replicas' writes."""
        await anyio.to_thread.run_sync(self.gallery.sync)

    async def catch_up_gallery(self) -> None:
        """Before identify searches: committed writes of every process and replica become visible."""
        await anyio.to_thread.run_sync(self.gallery.catch_up)

    async def gallery_written(self) -> None:
        """After this process's own enrollment or deletion, before it answers."""
        await anyio.to_thread.run_sync(self.gallery.after_write)

    def session(self) -> Session:
        return self.database.sessions()
