"""Embedder interface: the part the pipeline and the query service share, swappable per backend."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from memstream.schemas.memory import MemoryNode

if TYPE_CHECKING:
    from memstream.embedder.splade import SpladeEncoder

Matrix = npt.NDArray[np.float32]


class Embedder(ABC):
    """Maps texts to L2-normalised vectors, so cosine similarity is a dot product."""

    #: Identifies the vector space; stored with every memory so a model change is detectable.
    model_id: str
    dimensions: int
    #: True when queries and memories are embedded differently (e5's query:/passage:).
    asymmetric: bool = False
    #: True when a batch costs less per text than single calls (so concurrent queries are
    #: worth coalescing into one call).
    batches_well: bool = True
    #: Cosines that mean "about the same thing" / "possibly the same fact", for this model's
    #: scale: the same share of unrelated LoCoMo pairs lies below them for every model.
    related_cosine: float = 0.5
    contradiction_cosine: float = 0.6
    #: Cosine below a query's best hit at which a memory stops counting as relevant (the
    #: relevance floor): 99 % of LoCoMo evidence lies within it, for MiniLM 0.56, e5 0.105.
    relevance_margin: float = 0.5
    #: The learned sparse encoder that goes with it (``embedder.sparse``), or None.
    sparse: SpladeEncoder | None = None

    @abstractmethod
    def embed(self, texts: Sequence[str]) -> Matrix:
        """Shape (len(texts), dimensions), float32, rows of unit length."""

    def embed_queries(self, texts: Sequence[str]) -> Matrix:
        """Search texts; the same as :meth:`embed` for symmetric models."""
        return self.embed(texts)

    def embed_one(self, text: str) -> Matrix:
        """One memory text."""
        row: Matrix = self.embed([text])[0]
        return row

    def embed_query(self, text: str) -> Matrix:
        row: Matrix = self.embed_queries([text])[0]
        return row

    def index(self, nodes: Sequence[MemoryNode], *, force: bool = False) -> None:
        """Give each memory what recall searches: its dense vector (of the content) and, with
        a sparse encoder, its sparse terms (of the content and, weaker, the turn it answered).
        Blocking: call it in a thread. Without ``force`` only what is missing or stale."""
        todo = [
            n
            for n in nodes
            if force
            or n.vector is None
            or n.embedding_model != self.model_id
            or (self.sparse is not None and n.sparse is None)
        ]
        if not todo:
            return
        vectors = self.embed([n.content for n in todo])
        for node, vector in zip(todo, vectors, strict=True):
            node.vector = vector.tolist()
            node.embedding_model = self.model_id
        if self.sparse is not None:
            for node, terms in zip(todo, self.sparse.encode_memories(todo), strict=True):
                node.sparse = terms
