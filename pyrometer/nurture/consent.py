"""Whether a lead may be contacted on a channel, checked when an action runs.

The CAN-SPAM rule of the documents (004): consent, unsubscribe and do-not-contact are
honoured by every automated action. Per-channel blocks keep their reason as Mautic does:
``unsubscribed``, ``bounced``, ``complained`` or ``manual``.
"""

from __future__ import annotations

from collections.abc import Mapping

BLOCK_REASONS = ("unsubscribed", "bounced", "complained", "manual")


def contact_refusal(
    channel: str,
    *,
    suppressed: bool,
    consent: bool | None,
    blocks: Mapping[str, str],
    address: str | None = None,
) -> str | None:
    """Why the lead may not be contacted on ``channel`` now (the exit reason), or ``None``.

    ``blocks``: channel → reason (``*`` blocks every channel). A lead with ``consent``
    ``False`` gets nothing; ``None`` (never asked) is left to the suppression rules.
    An e-mail needs an address."""
    if suppressed:
        return "suppressed"
    if consent is False:
        return "no_consent"
    for key in (channel, "*"):
        if key in blocks:
            return blocks[key]
    if channel == "email" and not address:
        return "no_address"
    return None


def email_address(lead_id: str, attributes: Mapping[str, object]) -> str | None:
    """The lead's ``email`` attribute, else its id when that is an e-mail address."""
    value = attributes.get("email")
    for candidate in (value, lead_id):
        if isinstance(candidate, str) and _looks_like_address(candidate):
            return candidate.strip()
    return None


def _looks_like_address(text: str) -> bool:
    local, at, domain = text.strip().rpartition("@")
    return bool(at and local and "." in domain and not any(c.isspace() for c in text.strip()))
