"""A fake OpenAI Chat Completions API on a real local socket.

Point the real client at it with ``OpenAI(api_key="test", base_url=f"{fake.url}/v1", max_retries=0)``.

The answer is the text or callable given to ``set_reply`` (or the constructor), else ``default_answer``: it
looks in the system (or developer) messages for the first line shaped like a numbered passage,
``[1] Some passage text``, and answers ``According to [1], "Some passage text"``; with no such line it answers
``I don't know.``. Usage counts are whitespace-separated words, not real tokens.

Failures are queued first-in, first-out and apply only to ``POST /v1/chat/completions``: ``fail_with`` answers
with the OpenAI error JSON instead of a completion, ``delay`` answers late (long enough for a client timeout).

``POST /v1/embeddings`` answers deterministic embeddings in OpenAI's shape (``float`` or ``base64``
encoding, optional ``dimensions``): by default the words of the text hashed into ``EMBEDDING_DIMENSIONS``
buckets and L2-normalised, so texts sharing words are similar; ``set_embedding`` replaces the function (or,
with ``batch=``, embeds each request's texts in one call: tests/fakes/minilm.py serves a real sentence model).
``fail_embeddings_with`` queues errors for that route.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import math
import re
import struct
import threading
import time
import unicodedata
from collections.abc import Callable, Iterable
from typing import Any

from .base import FakeServer, RecordedRequest, Reply

COMPLETIONS_PATH = "/v1/chat/completions"
EMBEDDINGS_PATH = "/v1/embeddings"
MODELS_PATH = "/v1/models"
EMBEDDING_DIMENSIONS = 64
NO_PASSAGE_ANSWER = "I don't know."
MODEL_CREATED = 1_700_000_000

Messages = list[dict[str, str]]
Answer = str | Callable[[Messages], str]
Embedder = Callable[[str, int], list[float]]
BatchEmbedder = Callable[[list[str], int], list[list[float]]]

_PASSAGE_LINE = re.compile(r"^\s*\[(\d+)\]\s*(\S.*?)\s*$", re.MULTILINE)

# status -> (type, code, message) of the error body OpenAI sends.
_ERRORS: dict[int, tuple[str, str | None, str]] = {
    400: ("invalid_request_error", None, "Bad request."),
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided."),
    403: ("invalid_request_error", "unsupported_country_region_territory", "Country not supported."),
    404: ("invalid_request_error", "model_not_found", "The model does not exist or you cannot access it."),
    429: ("requests", "rate_limit_exceeded", "Rate limit reached for requests. Please try again later."),
    500: ("server_error", None, "The server had an error while processing your request. Sorry about that!"),
    503: ("server_error", None, "The server is overloaded or not ready yet."),
}


def error_body(
    message: str,
    error_type: str,
    *,
    param: str | None = None,
    code: str | None = None,
) -> dict[str, Any]:
    """The JSON body OpenAI answers errors with."""
    return {"error": {"message": message, "type": error_type, "param": param, "code": code}}


def content_text(content: Any) -> str:
    """The text of a message's content, whether a string or a list of content parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return ""


def default_answer(messages: Messages) -> str:
    """Quote the first ``[n] passage`` line of the system/developer messages, else say ``I don't know.``."""
    system = "\n".join(m["content"] for m in messages if m["role"] in ("system", "developer"))
    match = _PASSAGE_LINE.search(system)
    if match is None:
        return NO_PASSAGE_ANSWER
    return f'According to [{match.group(1)}], "{match.group(2)}"'


def hashed_embedding(text: str, dimensions: int = EMBEDDING_DIMENSIONS) -> list[float]:
    """Words (case- and accent-folded) hashed into `dimensions` buckets, L2-normalised: deterministic, and texts
    sharing words have a high cosine similarity. A text without words gets a fixed unit vector."""
    folded = "".join(c for c in unicodedata.normalize("NFKD", text.casefold()) if not unicodedata.combining(c))
    vector = [0.0] * dimensions
    for word in re.findall(r"[^\W_]+", folded):
        digest = hashlib.sha256(word.encode()).digest()
        bucket = int.from_bytes(digest[:4], "big") % dimensions
        vector[bucket] += 1.0 if digest[4] % 2 else -1.0
    norm = math.sqrt(sum(x * x for x in vector))
    if not norm:
        return [1.0] + [0.0] * (dimensions - 1)
    return [x / norm for x in vector]


def word_count(text: str) -> int:
    """The fake's stand-in for a token count."""
    return len(text.split())


class FakeOpenAI(FakeServer):
    """Speaks ``POST /v1/chat/completions`` and ``GET /v1/models``; records every prompt it receives."""

    def __init__(self, reply: Answer | None = None, *, models: Iterable[str] = ("gpt-4o-mini",)) -> None:
        super().__init__()
        self.models = list(models)
        self._reply: Answer | None = reply
        self._ids = itertools.count(1)
        self._state = threading.Lock()
        self._embedder: Embedder = hashed_embedding
        self._batch_embedder: BatchEmbedder | None = None
        self.route("POST", COMPLETIONS_PATH, self._complete)
        self.route("POST", EMBEDDINGS_PATH, self._embed)
        self.route("GET", MODELS_PATH, self._list_models)

    # -- configuration -------------------------------------------------------------------------
    def set_reply(self, reply: Answer | None) -> None:
        """Answer with this text, or with ``reply(messages)``; None restores ``default_answer``."""
        with self._state:
            self._reply = reply

    def fail_with(
        self,
        status: int,
        *,
        times: int = 1,
        message: str | None = None,
        error_type: str | None = None,
        code: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        """Answer the next `times` completions with an OpenAI error (a 429 sends ``retry-after: 1``)."""
        default_type, default_code, default_message = _ERRORS.get(
            status, ("server_error" if status >= 500 else "invalid_request_error", None, f"Error {status}.")
        )
        headers: dict[str, str] = {}
        if retry_after is None and status == 429:
            retry_after = 1
        if retry_after is not None:
            headers["retry-after"] = f"{retry_after:g}"
        body = error_body(
            message or default_message,
            error_type or default_type,
            code=code if code is not None else default_code,
        )
        self.inject_fault("POST", COMPLETIONS_PATH, times=times, reply=Reply(status, body, headers))

    def set_embedding(self, embedder: Embedder | None = None, *, batch: BatchEmbedder | None = None) -> None:
        """Embed with ``embedder(text, dimensions)``, or a request's texts at once with ``batch(texts,
        dimensions)``; neither restores ``hashed_embedding``."""
        with self._state:
            self._embedder = embedder or hashed_embedding
            self._batch_embedder = batch

    def fail_embeddings_with(self, status: int, *, times: int = 1) -> None:
        """Answer the next `times` embedding requests with an OpenAI error."""
        error_type, code, message = _ERRORS.get(status, ("server_error", None, f"Error {status}."))
        self.inject_fault(
            "POST", EMBEDDINGS_PATH, times=times, reply=Reply(status, error_body(message, error_type, code=code))
        )

    def delay(self, seconds: float, *, times: int = 1) -> None:
        """Answer the next `times` completions `seconds` late (they still succeed if the client waits)."""
        self.inject_fault("POST", COMPLETIONS_PATH, times=times, delay=seconds)

    def clear_requests(self) -> None:
        """Forget recorded requests (the reply, embedder and queued failures stay)."""
        with self._lock:
            self.requests.clear()
            self.errors.clear()

    def reset(self) -> None:
        """Forget recorded requests and queued failures, and go back to ``default_answer``."""
        self.clear_faults()
        with self._lock:
            self.requests.clear()
            self.errors.clear()
        self.set_reply(None)
        self.set_embedding(None)

    # -- inspection ----------------------------------------------------------------------------
    def completion_requests(self) -> list[RecordedRequest]:
        """Every chat completion request received, including ones answered with an injected failure."""
        return self.requests_to("POST", COMPLETIONS_PATH)

    def prompts(self) -> list[Messages]:
        """The ``{role, content}`` messages of every chat completion request, oldest first."""
        return [_normalise(request.json().get("messages", [])) for request in self.completion_requests()]

    def last_messages(self) -> Messages:
        """The ``{role, content}`` messages of the last chat completion request."""
        prompts = self.prompts()
        assert prompts, "FakeOpenAI received no chat completion request"
        return prompts[-1]

    def embedding_inputs(self) -> list[list[str]]:
        """The texts of every embedding request received, oldest first (a single string as a one-item list)."""
        inputs = [request.json().get("input") for request in self.requests_to("POST", EMBEDDINGS_PATH)]
        return [[value] if isinstance(value, str) else list(value) for value in inputs]

    def last_request(self) -> dict[str, Any]:
        """The full JSON body of the last chat completion request (model, temperature, ...)."""
        requests = self.completion_requests()
        assert requests, "FakeOpenAI received no chat completion request"
        body: dict[str, Any] = requests[-1].json()
        return body

    # -- routes --------------------------------------------------------------------------------
    def _complete(self, request: RecordedRequest) -> Reply:
        """``POST /v1/chat/completions``: validate like OpenAI, then answer a ``chat.completion``."""
        body, refused = _authorized_body(request)
        if refused is not None:
            return refused
        if not isinstance(body.get("messages"), list) or not body["messages"]:
            return Reply(
                400,
                error_body(
                    "Missing required parameter: 'messages'.",
                    "invalid_request_error",
                    param="messages",
                    code="missing_required_parameter",
                ),
            )
        if body.get("stream"):
            message = "FakeOpenAI does not support stream=true."
            return Reply(400, error_body(message, "invalid_request_error", param="stream"))
        messages = _normalise(body["messages"])
        with self._state:
            reply = self._reply
            number = next(self._ids)
        if reply is None:
            text = default_answer(messages)
        elif callable(reply):
            text = reply(messages)
        else:
            text = reply
        prompt_tokens = sum(word_count(m["content"]) for m in messages)
        completion_tokens = word_count(text)
        completion = {
            "id": f"chatcmpl-fake{number}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body["model"],
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text, "refusal": None, "annotations": []},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
            "service_tier": "default",
            "system_fingerprint": None,
        }
        return Reply(200, completion, {"x-request-id": f"req_fake{number}"})

    def _embed(self, request: RecordedRequest) -> Reply:
        """``POST /v1/embeddings``: validate like OpenAI, then answer a ``list`` of ``embedding`` objects."""
        body, refused = _authorized_body(request)
        if refused is not None:
            return refused
        texts = body.get("input")
        texts = [texts] if isinstance(texts, str) else texts
        if not isinstance(texts, list) or not texts or not all(isinstance(t, str) and t for t in texts):
            message = "'input' must be a non-empty string or a list of non-empty strings."
            return Reply(400, error_body(message, "invalid_request_error", param="input"))
        dimensions = body.get("dimensions") or EMBEDDING_DIMENSIONS
        encoding = body.get("encoding_format") or "float"
        if encoding not in ("float", "base64"):
            return Reply(400, error_body("encoding_format must be float or base64.", "invalid_request_error"))
        with self._state:
            embedder, batch = self._embedder, self._batch_embedder
        vectors = batch(texts, dimensions) if batch else [embedder(text, dimensions) for text in texts]
        data = []
        for index, vector in enumerate(vectors):
            encoded: Any = vector
            if encoding == "base64":
                encoded = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
            data.append({"object": "embedding", "index": index, "embedding": encoded})
        tokens = sum(word_count(t) for t in texts)
        usage = {"prompt_tokens": tokens, "total_tokens": tokens}
        return Reply(200, {"object": "list", "data": data, "model": body["model"], "usage": usage})

    def _list_models(self, request: RecordedRequest) -> Reply:
        """``GET /v1/models`` and ``GET /v1/models/{id}``."""
        denied = _check_auth(request)
        if denied is not None:
            return denied
        rows = [_model_row(model) for model in self.models]
        wanted = request.path[len(MODELS_PATH) :].strip("/")
        if not wanted:
            return Reply(200, {"object": "list", "data": rows})
        for row in rows:
            if row["id"] == wanted:
                return Reply(200, row)
        message = f"The model '{wanted}' does not exist or you do not have access to it."
        return Reply(404, error_body(message, "invalid_request_error", param="model", code="model_not_found"))


def _authorized_body(request: RecordedRequest) -> tuple[dict[str, Any], Reply | None]:
    """The JSON body of an authenticated request naming a model, or the error OpenAI would answer instead."""
    denied = _check_auth(request)
    if denied is not None:
        return {}, denied
    try:
        body = request.json()
    except ValueError:
        return {}, Reply(400, error_body("We could not parse the JSON body of your request.", "invalid_request_error"))
    if not isinstance(body, dict) or not isinstance(body.get("model"), str):
        return {}, Reply(400, error_body("you must provide a model parameter", "invalid_request_error"))
    return body, None


def _check_auth(request: RecordedRequest) -> Reply | None:
    """Any non-empty Bearer key is accepted; no key at all is a 401 like the real API."""
    if request.headers.get("authorization", "").removeprefix("Bearer ").strip():
        return None
    return Reply(401, error_body("You didn't provide an API key.", "invalid_request_error"))


def _model_row(model: str) -> dict[str, Any]:
    """One entry of ``GET /v1/models``."""
    return {"id": model, "object": "model", "created": MODEL_CREATED, "owned_by": "system"}


def _normalise(messages: list[Any]) -> Messages:
    """Reduce request messages to ``{role, content}`` with the content flattened to text."""
    return [{"role": str(m.get("role", "")), "content": content_text(m.get("content"))} for m in messages]
