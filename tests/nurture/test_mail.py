"""The e-mail as bytes: what a mail reader parses back from :func:`mail.build`."""

from __future__ import annotations

import email
from email.message import EmailMessage
from email.policy import default

from pyrometer.nurture import mail
from pyrometer.nurture.links import Links


def test_a_built_message_parses_back_with_its_headers_parts_and_links() -> None:
    links = Links("s3cret", "https://pyro.example")
    text = "Hi Ågota — thanks,\n\nsee https://acme.example/guide?x=1\n" + "long " * 300
    rendered = mail.Rendered(
        "Ågota, here is your guide", text, '<p><a href="https://acme.example/y">y</a></p>'
    )
    out = mail.build(
        rendered,
        key="7:2",
        sender="Acmė Sales <hello@acme.example>",
        to="agota@example.lt",
        links=links,
        postal_address="Acme UAB, Gedimino pr. 1, Vilnius",
        now_us=1_796_000_000_000_000,
    )
    assert out.sender == "hello@acme.example" and out.message_id == mail.message_id("7:2")
    assert b"\r\n" in out.data and b"\n\n" not in out.data.replace(b"\r\n", b"")
    parsed = email.message_from_bytes(out.data, policy=default)
    assert isinstance(parsed, EmailMessage)
    assert str(parsed["Subject"]) == "Ågota, here is your guide"
    assert str(parsed["From"]) == "Acmė Sales <hello@acme.example>"
    assert str(parsed["Message-ID"]) == out.message_id
    unsubscribe = links.unsubscribe("7:2")
    assert str(parsed["List-Unsubscribe"]) == f"<{unsubscribe}>"  # one plain <URL>
    assert str(parsed["List-Unsubscribe-Post"]) == "List-Unsubscribe=One-Click"
    plain = parsed.get_body(("plain",)).get_content()
    assert plain.startswith("Hi Ågota — thanks,")
    assert links.click("7:2", "https://acme.example/guide?x=1") in plain  # tracked
    assert unsubscribe in plain and "Acme UAB, Gedimino pr. 1, Vilnius" in plain
    html = parsed.get_body(("html",)).get_content()
    assert links.click("7:2", "https://acme.example/y") in html
    assert links.pixel("7:2") in html
    assert max(len(line) for line in out.data.split(b"\r\n")) <= 998
