"""Signed links in e-mails: unsubscribe, the open pixel and tracked clicks.

A token carries only the send's key (``enrolment:step``) and, for a click, the target URL:
no lead id, which may be an e-mail address (an itsdangerous payload is readable by
anyone). The signature makes them unforgeable; they never expire, as an unsubscribe link
must keep working.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import quote

from itsdangerous import BadSignature, URLSafeSerializer

UNSUBSCRIBE = "unsubscribe"
OPEN = "open"
CLICK = "click"


class BadLink(ValueError):
    """A token that is not one of ours (tampered, or for another purpose)."""


@lru_cache(maxsize=64)
def _signer(secret: str, purpose: str) -> URLSafeSerializer:
    """One serializer per secret and purpose: making one derives its key each time."""
    return URLSafeSerializer(secret, salt=f"pyrometer.nurture.{purpose}")


@dataclass(frozen=True, slots=True)
class Links:
    """Makes and reads the links of one store (``secret``) served at ``public_url``."""

    secret: str
    public_url: str

    def _signer(self, purpose: str) -> URLSafeSerializer:
        return _signer(self.secret, purpose)

    def token(self, purpose: str, payload: Any) -> str:
        return str(self._signer(purpose).dumps(payload))

    def read(self, purpose: str, token: str) -> Any:
        try:
            return self._signer(purpose).loads(token)
        except BadSignature as exc:
            raise BadLink("not a valid link") from exc

    def base(self) -> str:
        return self.public_url.rstrip("/")

    def unsubscribe(self, key: str) -> str:
        return f"{self.base()}/nurture/unsubscribe/{self.token(UNSUBSCRIBE, key)}"

    def pixel(self, key: str) -> str:
        return f"{self.base()}/nurture/open/{self.token(OPEN, key)}.gif"

    def click(self, key: str, url: str) -> str:
        return f"{self.base()}/nurture/click/{quote(self.token(CLICK, [key, url]))}"
