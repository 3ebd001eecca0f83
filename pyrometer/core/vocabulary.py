"""Other names for events and attributes: the playbook's ``aliases`` section.

Tools name the same act differently: Segment's specs send ``Order Completed`` where the
default playbook scores ``purchase``, and ``identify`` traits carry ``title`` and a nested
``company`` object where fit rules read ``job_title`` and ``company_size``. The playbook maps
them in one place a team can edit, and every engine resolves names through the playbook
(:meth:`pyrometer.core.playbook.Playbook.event_name` and ``lead_attributes``), so the batch
scorer, the incremental scorer and the service agree. Events keep the name they were sent
with in ledgers and in the store; the alias decides only what they mean, so a published
change of aliases applies to the whole history on rescore.

Also here: the names of Segment's B2B SaaS, e-commerce (v2) and e-mail specs, which
``playbook check`` counts as known vocabulary when it looks for typos in rule events.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from functools import cached_property
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from pyrometer.core.conditions import normalize_name

# https://segment.com/docs/connections/spec/b2b-saas/
SEGMENT_B2B_SAAS = (
    "Account Created",
    "Account Deleted",
    "Signed Up",
    "Signed In",
    "Signed Out",
    "Invite Sent",
    "Account Added User",
    "Account Removed User",
    "Trial Started",
    "Trial Ended",
)
# https://segment.com/docs/connections/spec/ecommerce/v2/
SEGMENT_ECOMMERCE = (
    "Products Searched",
    "Product List Viewed",
    "Product List Filtered",
    "Promotion Viewed",
    "Promotion Clicked",
    "Product Clicked",
    "Product Viewed",
    "Product Added",
    "Product Removed",
    "Cart Viewed",
    "Checkout Started",
    "Checkout Step Viewed",
    "Checkout Step Completed",
    "Payment Info Entered",
    "Order Completed",
    "Order Updated",
    "Order Refunded",
    "Order Cancelled",
    "Coupon Entered",
    "Coupon Applied",
    "Coupon Denied",
    "Coupon Removed",
    "Product Added to Wishlist",
    "Product Removed from Wishlist",
    "Wishlist Product Added to Cart",
    "Product Shared",
    "Cart Shared",
    "Product Reviewed",
)
# https://segment.com/docs/connections/spec/email/
SEGMENT_EMAIL = (
    "Email Bounced",
    "Email Delivered",
    "Email Link Clicked",
    "Email Marked as Spam",
    "Email Opened",
    "Unsubscribed",
)
SEGMENT_SPEC_EVENTS: frozenset[str] = frozenset(
    normalize_name(name) for name in (*SEGMENT_B2B_SAAS, *SEGMENT_ECOMMERCE, *SEGMENT_EMAIL)
)


def _flatten(record: Mapping[str, Any], prefix: str, out: dict[str, Any]) -> None:
    for key, value in record.items():
        name = normalize_name(f"{prefix} {key}") if prefix else normalize_name(str(key))
        if isinstance(value, Mapping):
            _flatten(value, name, out)
        else:
            out.setdefault(name, value)


def flatten_record(record: Mapping[str, Any]) -> dict[str, Any]:
    """Keys normalised, nested objects flattened: ``{"company": {"employee_count": 80}}``
    is ``company_employee_count``, as a ``company.employee_count`` column reads."""
    out: dict[str, Any] = {}
    _flatten(record, "", out)
    return out


class Aliases(BaseModel):
    """``events`` and ``attributes``: each name the playbook uses, with its other names.

    ``purchase: [Order Completed]`` makes an ``Order Completed`` event a purchase. For an
    attribute, the playbook's own name wins when a lead has it; otherwise the first alias
    the lead has gives the value. Names are matched loosely, like every event name.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    events: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    attributes: dict[str, tuple[str, ...]] = Field(default_factory=dict)

    @field_validator("events", "attributes", mode="before")
    @classmethod
    def _lists(cls, value: Any) -> Any:
        """``name: Other Name`` is ``name: [Other Name]``; ``name:`` (nothing) is ``[]``."""
        if isinstance(value, Mapping):
            return {
                key: () if other is None else (other,) if isinstance(other, str) else other
                for key, other in value.items()
            }
        return value

    @field_validator("events", "attributes")
    @classmethod
    def _normalize(cls, value: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
        """Names are matched loosely, so they are kept normalised (as rule events are)."""
        out: dict[str, tuple[str, ...]] = {}
        for name, others in value.items():
            key = normalize_name(name)
            if not key:
                raise ValueError(f"{name!r}: a name needs at least one letter or digit")
            normal = []
            for other in others:
                alias = normalize_name(other)
                if not alias:
                    raise ValueError(f"{name}: alias {other!r} needs a letter or digit")
                if alias != key and alias not in normal:
                    normal.append(alias)
            out[key] = (*out.get(key, ()), *(a for a in normal if a not in out.get(key, ())))
        return out

    @model_validator(mode="after")
    def _consistent(self) -> Aliases:
        for section, table in (("events", self.events), ("attributes", self.attributes)):
            owner: dict[str, str] = {}
            for name, others in table.items():
                for alias in others:
                    if alias in owner and owner[alias] != name:
                        raise ValueError(
                            f"{section}: {alias!r} is an alias of both {owner[alias]!r} "
                            f"and {name!r}"
                        )
                    owner[alias] = name
            for alias, name in owner.items():
                if alias in table:
                    raise ValueError(
                        f"{section}: {alias!r} is an alias of {name!r} and has aliases of its "
                        "own; give every alias to the name it finally means"
                    )
        return self

    @cached_property
    def event_map(self) -> dict[str, str]:
        """Alias → the event name it means (all normalised)."""
        return {alias: name for name, others in self.events.items() for alias in others}

    @cached_property
    def attribute_map(self) -> tuple[tuple[str, tuple[str, ...]], ...]:
        """``(attribute, its aliases in order)`` pairs, all normalised."""
        return tuple((name, others) for name, others in self.attributes.items() if others)

    def named_events(self) -> frozenset[str]:
        """Every event name the section mentions, aliases and the names they mean."""
        return frozenset({normalize_name(name) for name in self.events} | set(self.event_map))

    def resolve_attributes(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """``record`` (normalised keys: values or column SQL) with each attribute the
        playbook names filled in from its first alias present, when it is itself absent."""
        out = dict(record)
        for name, others in self.attribute_map:
            if name in out:
                continue
            found = next((other for other in others if other in record), None)
            if found is not None:
                out[name] = record[found]
        return out


def nearest(name: str, vocabulary: Iterable[str]) -> str | None:
    """The closest known name to a probable typo (``pgae_view`` → ``page_view``)."""
    close = difflib.get_close_matches(name, sorted(vocabulary), n=1, cutoff=0.75)
    return close[0] if close else None
