"""A fake SMTP server on a real local socket (RFC 5321's commands a mail client sends), for Django's SMTP backend.

Point Django at it with `EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"`, `EMAIL_HOST =
"127.0.0.1"`, `EMAIL_PORT = fake.port`. Every accepted message is kept in `messages` (envelope and the parsed
email). `fail_next(times)` answers the next DATA with a temporary failure (451) instead of accepting it;
`on_data` is called while the client waits for the answer to its DATA (what a test checks during delivery).
"""

from __future__ import annotations

import email
import email.policy
import socketserver
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any, Self


@dataclass
class ReceivedMail:
    """One message the server accepted."""

    sender: str
    recipients: list[str]
    data: bytes
    message: EmailMessage = field(init=False)

    def __post_init__(self) -> None:
        parsed = email.message_from_bytes(self.data, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self.message = parsed


def _address(argument: str) -> str:
    """The address in `FROM:<a@b> SIZE=…` / `TO:<a@b>`."""
    start, end = argument.find("<"), argument.find(">")
    return argument[start + 1 : end] if 0 <= start < end else argument.split(":", 1)[-1].strip()


class FakeSmtp:
    """An SMTP server that accepts every message (unless told to fail) and records it."""

    def __init__(self) -> None:
        self.messages: list[ReceivedMail] = []
        self.on_data: Callable[[ReceivedMail], Any] | None = None
        self._failures = 0
        self.refused: set[str] = set()
        self.refused_senders: set[str] = set()
        self._lock = threading.Lock()
        self._server: socketserver.ThreadingTCPServer | None = None

    def fail_next(self, times: int = 1) -> None:
        """Answer the next `times` DATA commands with 451 (temporary failure): the message is not accepted."""
        with self._lock:
            self._failures += times

    def refuse(self, address: str) -> None:
        """Answer RCPT TO `address` with 550 from now on (no such mailbox: a permanent refusal)."""
        with self._lock:
            self.refused.add(address)

    def refuse_sender(self, address: str) -> None:
        """Answer MAIL FROM `address` with 553 from now on (the platform's sender is not allowed: our mistake,
        not the recipient's)."""
        with self._lock:
            self.refused_senders.add(address)

    def clear_failures(self) -> None:
        """Accept messages again."""
        with self._lock:
            self._failures = 0
            self.refused_senders.clear()

    def _take_failure(self) -> bool:
        with self._lock:
            if self._failures:
                self._failures -= 1
                return True
            return False

    @property
    def port(self) -> int:
        assert self._server is not None, "server not started"
        return int(self._server.server_address[1])

    def start(self) -> Self:
        fake = self

        class Session(socketserver.StreamRequestHandler):
            def reply(self, line: str) -> None:
                self.wfile.write(line.encode() + b"\r\n")
                self.wfile.flush()

            def handle(self) -> None:
                self.reply("220 fake-smtp.netia.test ESMTP")
                sender, recipients = "", list[str]()
                while line := self.rfile.readline():
                    command, _, argument = line.decode("utf-8", "replace").rstrip("\r\n").partition(" ")
                    verb = command.upper()
                    if verb == "EHLO":
                        self.reply("250-fake-smtp.netia.test\r\n250-8BITMIME\r\n250 SMTPUTF8")
                    elif verb == "HELO":
                        self.reply("250 fake-smtp.netia.test")
                    elif verb == "MAIL" and _address(argument) in fake.refused_senders:
                        self.reply("553 5.7.1 Sender address rejected: not owned by user")
                    elif verb == "MAIL":
                        sender, recipients = _address(argument), []
                        self.reply("250 2.1.0 OK")
                    elif verb == "RCPT" and _address(argument) in fake.refused:
                        self.reply("550 5.1.1 Mailbox unavailable")
                    elif verb == "RCPT":
                        recipients.append(_address(argument))
                        self.reply("250 2.1.5 OK")
                    elif verb == "DATA":
                        self.reply("354 End data with <CR><LF>.<CR><LF>")
                        self._data(sender, recipients)
                    elif verb in ("RSET", "NOOP"):
                        self.reply("250 2.0.0 OK")
                    elif verb == "QUIT":
                        self.reply("221 2.0.0 Bye")
                        return
                    else:
                        self.reply("502 5.5.2 Command not recognised")

            def _data(self, sender: str, recipients: list[str]) -> None:
                lines = []
                while (line := self.rfile.readline()) not in (b".\r\n", b".\n", b""):
                    lines.append(line[1:] if line.startswith(b"..") else line)
                mail = ReceivedMail(sender=sender, recipients=list(recipients), data=b"".join(lines))
                if fake.on_data is not None:
                    fake.on_data(mail)
                if fake._take_failure():
                    self.reply("451 4.3.0 Temporary failure, try again later")
                    return
                with fake._lock:
                    fake.messages.append(mail)
                self.reply(f"250 2.0.0 OK queued as {len(fake.messages)}")

        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Session)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
