"""A real SMTP server for tests (aiosmtpd), on a free loopback port."""

from __future__ import annotations

import email
from email.message import EmailMessage
from email.policy import default
from typing import Any

from aiosmtpd.controller import Controller


class Inbox:
    """Every message the server took, parsed."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.recipients: list[list[str]] = []
        self.refuse = False  # answer 451 to every message (a failing server)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.refuse:
            return "451 try again later"
        parsed = email.message_from_bytes(envelope.original_content, policy=default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append(parsed)
        self.recipients.append(list(envelope.rcpt_tos))
        return "250 OK"

    def subjects(self) -> list[str]:
        return [str(m["Subject"]) for m in self.messages]


class FreePortController(Controller):
    """``port=0`` makes aiosmtpd test-connect to port 0; take the bound port first."""

    def _trigger_server(self) -> None:
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()
