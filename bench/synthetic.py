"""Synthetic event files for benchmarks, written by DuckDB straight to Parquet.

Shaped like real web activity: most events are page views and e-mail opens, a few are
demo requests and purchases; 30 events per lead on average over 180 days; 18-character
string lead ids like Salesforce's (``00Q000000012345EAA``), too long for DuckDB to inline.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

# (event, weight): the mix of a B2B site's activity log.
MIX = (
    ("page_view", 40),
    ("email_open", 20),
    ("pricing_page_view", 6),
    ("product_page_view", 8),
    ("email_click", 8),
    ("whitepaper_download", 3),
    ("case_study_download", 2),
    ("newsletter_signup", 2),
    ("social_follow", 1),
    ("form_submit", 2),
    ("webinar_attended", 1),
    ("demo_request", 1),
    ("trial_signup", 1),
    ("contact_sales", 1),
    ("cart_add", 1),
    ("purchase", 1),
    ("unsubscribe", 1),
)
END_US = 1_795_392_000_000_000  # 2026-11-23T00:00:00Z
SPAN_US = 180 * 86_400_000_000


def write_events(path: Path, n_events: int, events_per_lead: int = 30, seed: int = 1) -> Path:
    """``n_events`` rows of (lead_id, event, timestamp, url) in ``path`` (Parquet)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    n_leads = max(1, n_events // events_per_lead)
    names = [name for name, weight in MIX for _ in range(weight)]
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'; SET enable_progress_bar = false")
    con.execute(f"SELECT setseed({seed / 10})")
    con.execute(
        f"CREATE TEMP TABLE names AS SELECT unnest({names!r}) AS event, "
        f"generate_subscripts({names!r}, 1) - 1 AS k"
    )
    con.execute(f"""
        COPY (
            SELECT '00Q' || lpad(CAST(hash(i * 7 + {seed}) % {n_leads} AS VARCHAR), 12, '0')
                       || 'EAA' AS lead_id,
                   n.event,
                   make_timestamp({END_US - SPAN_US} + CAST(hash(i * 13 + {seed}) % {SPAN_US}
                                                             AS BIGINT)) AS timestamp,
                   CASE WHEN n.event = 'page_view' THEN
                        CASE WHEN hash(i) % 10 = 0 THEN '/pricing' ELSE '/blog/post-'
                             || CAST(hash(i) % 50 AS VARCHAR) END END AS url
            FROM range({n_events}) r(i)
            JOIN names n ON n.k = hash(i * 31 + {seed}) % {len(names)}
        ) TO '{path}' (FORMAT parquet, ROW_GROUP_SIZE 1000000)
    """)
    return path
