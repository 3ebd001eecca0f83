"""A synthetic company whose leads behave as the source documents describe.

Used by ``pyrometer demo``, the examples and the tests that need realistic volume. Each lead
comes from a source (web forms, bought lists, trade shows, ads, referrals, search), has a
profile (job title, company size, industry, country, consent) and follows one journey:

- **stays cold**: a bought-list or trade-show contact that opens an e-mail now and then;
- **warms up**: reads, subscribes, attends a webinar, looks at products (000, 002);
- **buys**: pricing pages, a demo or trial request, sales contact, then often a purchase
  through the sales stages (001);
- **goes cold**: engaged for a while, then silent for months (000);
- **unsubscribes**: a few opens, then asks to hear no more.

Profiles that fit the ideal customer take the warmer journeys more often, so fit and
engagement both carry signal, as in real data. Everything is seeded and reproducible.
"""

from __future__ import annotations

import csv
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

SOURCES = {
    "web_form": 30,
    "imported_list": 22,
    "trade_show": 10,
    "paid_ads": 18,
    "referral": 6,
    "organic_search": 14,
}
TITLES = {
    "CEO": 4,
    "Founder": 3,
    "VP Sales": 4,
    "Head of Marketing": 5,
    "Director of IT": 4,
    "Marketing Manager": 10,
    "Sales Lead": 6,
    "Product Manager": 6,
    "Analyst": 12,
    "Engineer": 14,
    "Consultant": 8,
    "Student": 8,
    "Assistant": 6,
    "": 10,
}
INDUSTRIES = {
    "Software": 20,
    "Financial Services": 10,
    "Healthcare": 8,
    "Manufacturing": 10,
    "Retail": 12,
    "Education": 10,
    "Government": 5,
    "Media": 6,
    "": 19,
}
COUNTRIES = {"US": 30, "GB": 10, "DE": 10, "LT": 5, "UA": 5, "CN": 8, "IN": 12, "BR": 8, "": 12}
FREE_MAIL = ("gmail.com", "yahoo.com", "outlook.com")
# Journey weights by source: bought lists mostly stay cold, referrals mostly buy.
JOURNEYS = ("stays_cold", "warms_up", "buys", "goes_cold", "unsubscribes")
SOURCE_JOURNEYS = {
    "web_form": (35, 30, 9, 20, 6),
    "imported_list": (72, 10, 2, 6, 10),
    "trade_show": (52, 22, 4, 17, 5),
    "paid_ads": (48, 25, 5, 16, 6),
    "referral": (25, 30, 25, 17, 3),
    "organic_search": (40, 30, 8, 18, 4),
}
CONTENT_PAGES = (
    "/blog/cold-leads",
    "/blog/lead-scoring-101",
    "/features",
    "/about",
    "/customers",
    "/integrations",
    "/blog/nurture-sequences",
)


def _pick(rng: random.Random, weights: dict[str, int]) -> str:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


@dataclass
class Company:
    """The generated files' rows: leads (attributes) and events."""

    leads: list[dict[str, str]] = field(default_factory=list)
    events: list[dict[str, str]] = field(default_factory=list)
    journeys: dict[str, str] = field(default_factory=dict)

    def write(self, folder: Path) -> tuple[Path, Path]:
        folder.mkdir(parents=True, exist_ok=True)
        leads_path, events_path = folder / "leads.csv", folder / "events.csv"
        for path, rows in ((leads_path, self.leads), (events_path, self.events)):
            with path.open("w", newline="", encoding="utf-8") as handle:
                writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
                writer.writeheader()
                writer.writerows(rows)
        return leads_path, events_path


class _Journey:
    """Emits one lead's events between its first touch and the end of the period."""

    def __init__(self, rng: random.Random, lead_id: str, start: datetime, end: datetime):
        self.rng, self.lead_id, self.start, self.end = rng, lead_id, start, end
        self.rows: list[dict[str, str]] = []

    def at(self, day: float) -> datetime | None:
        """A working-hours moment ``day`` days after the first touch, if before the end."""
        when = self.start + timedelta(days=day)
        when = when.replace(
            hour=self.rng.randint(8, 19),
            minute=self.rng.randint(0, 59),
            second=self.rng.randint(0, 59),
            microsecond=0,
        )
        return when if when <= self.end else None

    def emit(self, day: float, event: str, url: str = "") -> bool:
        when = self.at(day)
        if when is None:
            return False
        self.rows.append(
            {
                "lead_id": self.lead_id,
                "event": event,
                "timestamp": when.isoformat().replace("+00:00", "Z"),
                "event_id": f"{self.lead_id}-{len(self.rows) + 1}",
                "url": url,
            }
        )
        return True

    def browse(self, day: float, pages: int) -> None:
        for _ in range(pages):
            self.emit(day, "page_view", "https://example.com" + self.rng.choice(CONTENT_PAGES))

    def trickle(self, day: float, until: float, every: float, events: tuple[str, ...]) -> None:
        """Occasional low-value activity (opens, visits) every ``every`` days on average."""
        while day < until:
            day += self.rng.expovariate(1 / every)
            choice = self.rng.choice(events)
            if choice == "page_view":
                self.browse(day, self.rng.randint(1, 3))
            else:
                self.emit(day, choice)


def _journey_events(j: _Journey, kind: str, rng: random.Random) -> None:
    span = (j.end - j.start).total_seconds() / 86_400
    if kind == "stays_cold":
        j.trickle(0, span, 25, ("email_open", "email_open", "page_view"))
        if rng.random() < 0.3:
            j.emit(rng.uniform(0, span), "whitepaper_download")
    elif kind == "unsubscribes":
        j.trickle(0, min(span, 30), 8, ("email_open",))
        j.emit(rng.uniform(10, 40), "unsubscribe")
    elif kind == "goes_cold":
        active = rng.uniform(5, 25)
        j.emit(0, "newsletter_signup")
        j.trickle(0, active, 2, ("page_view", "email_open", "email_click", "product_page_view"))
        for event in rng.sample(
            ["webinar_attended", "whitepaper_download", "case_study_download", "form_submit"], k=2
        ):
            j.emit(rng.uniform(0, active), event)
        if rng.random() < 0.3:
            j.emit(rng.uniform(0, active), "pricing_page_view")
    elif kind == "warms_up":
        warm_from = rng.uniform(0, max(1.0, span * 0.6))
        j.trickle(0, warm_from, 12, ("email_open", "page_view"))
        j.emit(warm_from, "newsletter_signup")
        j.trickle(
            warm_from,
            span,
            3,
            ("page_view", "email_open", "email_click", "product_page_view", "whitepaper_download"),
        )
        j.emit(warm_from + rng.uniform(1, 30), "webinar_attended")
        if rng.random() < 0.15:
            _buying_spree(j, warm_from + rng.uniform(10, 60), rng, buy_chance=0.25)
    elif kind == "buys":
        j.trickle(0, span, 12, ("page_view", "email_open", "email_click", "product_page_view"))
        _buying_spree(j, rng.uniform(0, max(1.0, span * 0.7)), rng, buy_chance=0.6)


def _buying_spree(j: _Journey, day: float, rng: random.Random, buy_chance: float) -> None:
    """Hot signals over a few days, then the sales stages and maybe a purchase."""
    for offset in sorted(rng.uniform(0, 4) for _ in range(rng.randint(2, 5))):
        j.emit(day + offset, "pricing_page_view")
    j.emit(day + rng.uniform(0, 4), rng.choice(["demo_request", "trial_signup", "contact_sales"]))
    if rng.random() < 0.4:
        j.emit(day + rng.uniform(0, 3), "case_study_download")
    if rng.random() < 0.3:
        j.emit(day + rng.uniform(0, 2), "cart_add")
    if not j.emit(day + rng.uniform(1, 7), "sales_accepted"):
        return
    if rng.random() < 0.7 and j.emit(day + rng.uniform(7, 20), "opportunity_created"):
        close = day + rng.uniform(20, 50)
        if rng.random() < buy_chance / 0.7:
            j.emit(close, "purchase")
        elif rng.random() < 0.5:
            j.emit(close, "lost")
    elif rng.random() < 0.2:
        j.emit(day + rng.uniform(5, 15), "disqualified")


def _profile(rng: random.Random, lead_id: str, source: str) -> dict[str, str]:
    title = _pick(rng, TITLES)
    size = "" if rng.random() < 0.15 else str(max(1, int(rng.lognormvariate(4.0, 1.8))))
    company = f"company{rng.randint(1, 900)}"
    domain = rng.choice(FREE_MAIL) if rng.random() < 0.25 else f"{company}.example"
    return {
        "lead_id": lead_id,
        "email": f"{lead_id}@{domain}",
        "job_title": title,
        "company_size": size,
        "industry": _pick(rng, INDUSTRIES),
        "country": _pick(rng, COUNTRIES),
        "source": source,
        "do_not_email": "Yes" if rng.random() < 0.03 else "No",
    }


def _fit_bias(profile: dict[str, str]) -> float:
    """How much more often a good-fit profile takes the warm journeys (and students less)."""
    title = profile["job_title"].lower()
    bias = 1.0
    if any(word in title for word in ("ceo", "founder", "vp", "head", "director")):
        bias *= 1.8
    if "student" in title:
        bias *= 0.3
    size = int(profile["company_size"]) if profile["company_size"] else 0
    if 50 <= size <= 5000:
        bias *= 1.5
    if profile["industry"] in ("Software", "Financial Services", "Healthcare", "Manufacturing"):
        bias *= 1.2
    return bias


def generate(
    n_leads: int = 3000, seed: int = 7, end: datetime | None = None, days: int = 180
) -> Company:
    """``n_leads`` leads first seen over the ``days`` before ``end``, with their events."""
    rng = random.Random(seed)
    end = end or datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    company = Company()
    for number in range(1, n_leads + 1):
        lead_id = f"L{number:05d}"
        source = _pick(rng, SOURCES)
        profile = _profile(rng, lead_id, source)
        start = end - timedelta(days=rng.uniform(1, days))
        profile["created_at"] = start.replace(microsecond=0).isoformat().replace("+00:00", "Z")
        weights = list(SOURCE_JOURNEYS[source])
        bias = _fit_bias(profile)
        weights = [
            weights[0] / bias,
            weights[1] * bias,
            weights[2] * bias,
            weights[3],
            weights[4] / bias,
        ]
        kind = rng.choices(JOURNEYS, weights=weights)[0]
        journey = _Journey(rng, lead_id, start, end)
        if source == "referral":
            journey.emit(0, "referral")
        _journey_events(journey, kind, rng)
        company.leads.append(profile)
        company.events.extend(sorted(journey.rows, key=lambda row: row["timestamp"]))
        company.journeys[lead_id] = kind
    return company
