"""HTTP to URLs the operator chose (Crisp's API, CRISP_API_URL): one pooled session per thread, and a network
failure told apart from an answer. What the protocol does with an answer stays in webhooks.crisp. URLs a
tenant can influence go through netia.outbound (the SSRF guard) instead."""

from __future__ import annotations

import threading
from typing import Any

import requests

Response = requests.Response
_local = threading.local()


class Unreachable(Exception):
    """No answer: `problem` is "timeout" or "unreachable" (both worth retrying); `message` says where."""

    def __init__(self, message: str, *, problem: str) -> None:
        super().__init__(message)
        self.message = message
        self.problem = problem


def _session() -> requests.Session:
    """One pooled session per thread. No proxy/netrc from the environment: .netrc could replace our header."""
    session: requests.Session | None = getattr(_local, "session", None)
    if session is None:
        session = requests.Session()
        session.trust_env = False
        _local.session = session
    return session


def request(method: str, url: str, *, service: str, timeout: float, **options: Any) -> Response:
    """Send one request; raises Unreachable naming `service` ("Papercups at https://…") when nothing answers."""
    try:
        return _session().request(method, url, timeout=timeout, **options)
    except requests.Timeout:
        raise Unreachable(f"{service} did not answer within {timeout:g} s.", problem="timeout") from None
    except requests.RequestException as exc:
        raise Unreachable(f"Could not reach {service} ({type(exc).__name__}).", problem="unreachable") from None
