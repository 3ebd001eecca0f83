"""Rendering one e-mail: sandboxed Jinja2 templates, tracked links, the unsubscribe
headers (RFC 8058 one-click) and the CAN-SPAM footer with the sender's postal address."""

from __future__ import annotations

import binascii
import hashlib
import html as html_lib
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from email.header import Header
from email.utils import formataddr, formatdate, parseaddr
from functools import lru_cache
from typing import Any

from jinja2 import ChainableUndefined, Template
from jinja2.sandbox import ImmutableSandboxedEnvironment

from pyrometer.core.nurture_spec import Email
from pyrometer.nurture.links import Links

_TEXT = ImmutableSandboxedEnvironment(undefined=ChainableUndefined, autoescape=False)
_HTML = ImmutableSandboxedEnvironment(undefined=ChainableUndefined, autoescape=True)
_URL = re.compile(r"https?://[^\s<>\"')\]]+")
_HREF = re.compile(r"""href=(["'])(https?://[^"']+)\1""")


@dataclass(frozen=True, slots=True)
class Rendered:
    subject: str
    text: str
    html: str


def context(
    lead_id: str,
    temperature: str,
    stage: str,
    attributes: Mapping[str, Any],
    owner: Mapping[str, Any] | None,
    interests: list[str],
    public_url: str,
) -> dict[str, Any]:
    """What a template sees (the playbook documents these names)."""
    attrs = dict(attributes)
    first = attrs.get("first_name") or attrs.get("firstname")
    if not first and isinstance(attrs.get("name"), str):
        first = str(attrs["name"]).split()[0] if str(attrs["name"]).split() else None
    return {
        "lead": {"id": lead_id, "temperature": temperature, "stage": stage, "attributes": attrs},
        "attr": attrs,
        "first_name": first,
        "owner": dict(owner) if owner else None,
        "interests": interests,
        "public_url": public_url.rstrip("/"),
    }


@lru_cache(maxsize=512)
def _compiled(source: str, html: bool) -> Template:
    """Compiling is most of a render's cost: each template once per process."""
    return (_HTML if html else _TEXT).from_string(source)


def render(spec: Email, variant: int, ctx: Mapping[str, Any]) -> Rendered:
    subject = _compiled(spec.variants[variant], False).render(ctx)
    text = _compiled(spec.text, False).render(ctx)
    if spec.html is not None:
        body = _compiled(spec.html, True).render(ctx)
    else:
        body = "<div>" + html_lib.escape(text).replace("\n", "<br>\n") + "</div>"
    return Rendered(" ".join(subject.split()), text, body)


def message_id(key: str, domain: str = "pyrometer") -> str:
    """One Message-ID per send key (``enrolment:step``): a resend after a crash carries
    the same one, so a mailbox can drop the repeat, and a bounce report names the send."""
    enrolment, _, step = key.partition(":")
    digest = hashlib.sha256(key.encode()).hexdigest()[:8]
    return f"<nurture.{enrolment}.{step}.{digest}@{domain}>"


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A message ready for SMTP: its envelope and its bytes (CRLF line ends).

    Built by hand rather than with :class:`email.message.EmailMessage`, whose header
    registry took most of a send's time (about 3 ms a message); what a reader parses
    back is the same: the headers, the plain and HTML parts in UTF-8."""

    message_id: str
    sender: str  # the envelope sender (an address)
    to: str
    data: bytes

    def as_bytes(self) -> bytes:
        return self.data


def build(
    rendered: Rendered,
    *,
    key: str,
    sender: str,
    to: str,
    links: Links,
    postal_address: str,
    now_us: int,
    track: bool = True,
) -> Outgoing:
    """The message to send: links tracked, the pixel, unsubscribe link and headers, and
    the footer."""
    unsubscribe = links.unsubscribe(key)
    text, body = rendered.text, rendered.html
    if track:
        text = _URL.sub(lambda m: links.click(key, m.group(0)), text)
        body = _HREF.sub(
            lambda m: f"href={m.group(1)}{links.click(key, m.group(2))}{m.group(1)}", body
        )
        body = _link_bare_urls(body, links, key)
    footer = f"\n\n--\nTo stop these e-mails: {unsubscribe}\n{postal_address}\n"
    text = text.rstrip() + footer
    body += (
        f'<hr><p style="font-size:small">To stop these e-mails, '
        f'<a href="{html_lib.escape(unsubscribe)}">unsubscribe</a>.<br>'
        f"{html_lib.escape(postal_address)}</p>"
    )
    if track:
        body += f'<img src="{html_lib.escape(links.pixel(key))}" width="1" height="1" alt="">'
    mid = message_id(key)
    name, address = _sender(sender)
    boundary = "=_pyrometer_" + secrets.token_hex(12)
    # Long lines are not folded into encoded words: List-Unsubscribe must stay a plain
    # <URL> (RFC 2369), and its token is longer than 78 characters.
    head = [
        f"From: {_address_header(name, address) if name else address}",
        f"To: {to}",
        f"Subject: {_text_header(rendered.subject)}",
        f"Date: {formatdate(now_us / 1e6, usegmt=True)}",
        f"Message-ID: {mid}",
        f"List-Unsubscribe: <{unsubscribe}>",
        "List-Unsubscribe-Post: List-Unsubscribe=One-Click",
        "MIME-Version: 1.0",
        f'Content-Type: multipart/alternative; boundary="{boundary}"',
    ]
    parts = [
        "\r\n".join(head),
        "",
        f"--{boundary}",
        *_part("text/plain", text),
        f"--{boundary}",
        *_part("text/html", f"<html><body>{body}</body></html>\n"),
        f"--{boundary}--",
        "",
    ]
    return Outgoing(mid, address or sender, to, "\r\n".join(parts).encode("ascii"))


@lru_cache(maxsize=16)
def _sender(sender: str) -> tuple[str, str]:
    return parseaddr(sender)


def _text_header(value: str) -> str:
    """A header's text: as it is when ASCII, else RFC 2047 encoded words (UTF-8)."""
    value = " ".join(value.replace("\r", " ").replace("\n", " ").split())
    if value.isascii():
        return value
    return Header(value, "utf-8").encode(linesep="\r\n")


def _address_header(name: str, address: str) -> str:
    return formataddr((name, address), charset="utf-8")


def _part(content_type: str, content: str) -> list[str]:
    """One body part's lines: 7bit when ASCII with short lines, else quoted-printable."""
    content = content.replace("\r\n", "\n").replace("\r", "\n")
    if content.isascii() and all(len(line) <= 900 for line in content.split("\n")):
        encoding, payload = "7bit", content
    else:
        encoding = "quoted-printable"
        payload = binascii.b2a_qp(content.encode("utf-8")).decode("ascii")
    lines = payload.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [
        f'Content-Type: {content_type}; charset="utf-8"',
        f"Content-Transfer-Encoding: {encoding}",
        "",
        *lines,
    ]


def _link_bare_urls(body: str, links: Links, key: str) -> str:
    """In a body made from the text part, URLs that are not in an ``href`` yet become
    tracked links."""
    if "href=" in body:
        return body

    def repl(m: re.Match[str]) -> str:
        url = html_lib.unescape(m.group(0))
        return f'<a href="{html_lib.escape(links.click(key, url))}">{m.group(0)}</a>'

    return _URL.sub(repl, body)
