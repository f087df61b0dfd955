"""Embedder interface: the part the pipeline and the query service share, swappable per backend."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

Matrix = npt.NDArray[np.float32]


class Embedder(ABC):
    """Maps texts to L2-normalised vectors, so cosine similarity is a dot product."""

    #: Identifies the vector space; stored with every memory so a model change is detectable.
    model_id: str
    dimensions: int

    @abstractmethod
    def embed(self, texts: Sequence[str]) -> Matrix:
        """Shape (len(texts), dimensions), float32, rows of unit length."""

    def embed_one(self, text: str) -> Matrix:
        row: Matrix = self.embed([text])[0]
        return row
