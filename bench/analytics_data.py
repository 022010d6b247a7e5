"""The data of ``bench.analytics`` (PostgreSQL, set-based: ``INSERT … SELECT generate_series``), and the
reference computations of the dashboard's numbers straight from the raw event log.

Sizes at ``--scale 1``: 1M contacts; 10M events — page views from outside (a quarter with a UTM
touchpoint), the lifecycle's ``leadflow.stage_changed`` (every contact a lead, a third MQL, a ninth SQL,
…), 3M email events over 20 templates, 5 broadcasts and a journey's two steps (a seventh of the opens and
clicks by machines), 100k ``order.completed`` conversions with a revenue; a journey with 100k runs through
an A/B split. Events spread over the 60 days before now, ids in insertion order.
"""

from __future__ import annotations

from dataclasses import dataclass

SPAN = 60 * 86400  # seconds of history
TEMPLATES, BROADCASTS = 20, 5
JOURNEY = "J" + "0" * 25


@dataclass(frozen=True)
class Sizes:
    contacts: int
    events: int
    conversions: int
    emails: int
    runs: int

    @classmethod
    def of(cls, scale: float) -> Sizes:
        return cls(
            contacts=max(1000, int(1_000_000 * scale)),
            events=max(10_000, int(10_000_000 * scale)),
            conversions=max(100, int(100_000 * scale)),
            emails=max(3000, int(3_000_000 * scale)),
            runs=max(1000, int(100_000 * scale)),
        )


def _at(expr: str, span: int = SPAN) -> str:
    """A timestamp in the history (``span`` seconds from its start), spread by a hash of ``expr``."""
    return f"(now() - interval '{SPAN} seconds' + ((({expr})::bigint * 7919) % {span}) * interval '1 second')"


LATER = SPAN - 13 * 86400  # a contact's lead entry: its later stages follow within 12 days, before now
RECEIVED = "now() - interval '1 minute'"  # long settled when the rollup runs


def _cid(expr: str) -> str:
    return f"('C' || lpad(({expr})::text, 25, '0'))"


def seed_statements(s: Sizes) -> list[tuple[str, str]]:
    """(what, SQL) in order: pages first (their touchpoints precede the lead entries), then the rest."""
    stage_events = s.contacts + s.contacts // 3 + s.contacts // 9 + s.contacts // 27 + s.contacts // 81
    pages = max(1000, s.events - stage_events - s.emails - s.conversions)
    base = (
        "type, event, name, contact_id, properties, context, timestamp, received_at, processed_at, "
        "source, message_id"
    )
    stage = (
        "CASE k WHEN 1 THEN 'lead' WHEN 2 THEN 'mql' WHEN 3 THEN 'sql' WHEN 4 THEN 'customer' "
        "ELSE 'advocate' END"
    )
    status = (
        "(ARRAY['sent','sent','sent','sent','bounced','opened','opened','clicked','unsubscribed',"
        "'complained'])[1 + g % 10]"
    )
    return [
        (
            "contacts",
            "INSERT INTO contacts (id, email, traits, lifecycle_stage, subscription_status, consent, "
            "created_at, updated_at) SELECT " + _cid("g") + ", 'u' || g || '@example.com', '{}', 'lead', "
            f"'subscribed', '{{}}', {_at('g')}, {_at('g')} FROM generate_series(1, {s.contacts}) g",
        ),
        (
            "page views",
            f"INSERT INTO events ({base}) SELECT 'page', NULL, 'Home', {_cid(f'1 + g % {s.contacts}')}, "
            "jsonb_build_object('url', 'https://site.example/p' || (g % 50)), '{}', "
            f"{_at('g * 3')}, {_at('g * 3')}, {_at('g * 3')}, 'api', 'p' || g "
            f"FROM generate_series(1, {pages}) g",
        ),
        (
            "touchpoints",
            "INSERT INTO touchpoints (contact_id, event_id, occurred_at, source, medium, campaign, url) "
            "SELECT contact_id, id, timestamp, (ARRAY['google','facebook','newsletter','bing','linkedin'])"
            "[1 + id % 5], (ARRAY['cpc','social','email','organic'])[1 + (id / 5) % 4], "
            "'spring' || (id % 3), properties->>'url' FROM events WHERE type = 'page' AND id % 4 = 0",
        ),
        (
            "stage changes",
            f"INSERT INTO events ({base}) SELECT 'track', 'leadflow.stage_changed', NULL, {_cid('c')}, "
            f"jsonb_build_object('to', {stage}), '{{}}', "
            f"{_at('c', LATER)} + (k - 1) * ((c % 72) + 1) * interval '1 hour', {RECEIVED}, {RECEIVED}, "
            "'internal', 's' || c || '-' || k "
            f"FROM generate_series(1, {s.contacts}) c CROSS JOIN generate_series(1, 5) k "
            "WHERE c % (CASE k WHEN 1 THEN 1 WHEN 2 THEN 3 WHEN 3 THEN 9 WHEN 4 THEN 27 ELSE 81 END) = 0 "
            "ORDER BY c, k",
        ),
        (
            "email events",
            f"INSERT INTO events ({base}) SELECT 'track', 'leadflow.email_' || {status}, NULL, "
            f"{_cid(f'1 + (g * 13) % {s.contacts}')}, jsonb_strip_nulls(jsonb_build_object("
            f"'template_id', 't' || (g % {TEMPLATES}), 'message_id', 'msg' || g, "
            f"'journey_id', CASE WHEN g % 3 = 0 THEN '{JOURNEY}' END, "
            "'step_id', CASE WHEN g % 3 = 0 THEN 'send' || (1 + g % 2) END, "
            f"'broadcast_id', CASE WHEN g % 3 = 1 THEN 'b' || (g % {BROADCASTS}) END, "
            "'machine_generated', g % 7 = 0, "
            "'url', CASE WHEN g % 10 = 7 THEN 'https://site.example/l' || (g % 4) END)), '{}', "
            f"{_at('g * 5')}, {_at('g * 5')}, {_at('g * 5')}, 'internal', 'e' || g "
            f"FROM generate_series(1, {s.emails}) g",
        ),
        (
            "email touchpoints",  # as ingest records them (contacts/touchpoints.py): a person's click
            "INSERT INTO touchpoints (contact_id, event_id, occurred_at, source, medium, campaign, journey, "
            "kind) SELECT contact_id, id, timestamp, 'email', 'email', "
            "coalesce(properties->>'journey_id', properties->>'broadcast_id'), properties->>'journey_id', "
            "'click' FROM events WHERE event = 'leadflow.email_clicked' "
            "AND NOT (properties->>'machine_generated')::boolean",
        ),
        (
            "conversions",
            f"INSERT INTO events ({base}) SELECT 'track', 'order.completed', NULL, "
            f"{_cid(f'1 + (g * 37) % {s.contacts}')}, jsonb_build_object('revenue', 1 + g % 200), '{{}}', "
            f"now() - ((g * 7919) % (29 * 86400)) * interval '1 second', {RECEIVED}, {RECEIVED}, 'api', "
            "'o' || g "
            f"FROM generate_series(1, {s.conversions}) g",
        ),
        (
            "journey",
            "INSERT INTO journeys (id, name, status, definition, version, created_at, updated_at) VALUES "
            f"('{JOURNEY}', 'Bench', 'active', '{{\"steps\": []}}', 1, now(), now())",
        ),
        (
            "journey runs",
            "INSERT INTO journey_runs (id, journey_id, version, contact_id, status, entry_key, trigger, "
            f"entered_at, converted_at) SELECT 'R' || lpad(g::text, 25, '0'), '{JOURNEY}', 1, "
            f"{_cid(f'1 + g % {s.contacts}')}, 'completed', 'k' || g, '{{}}', "
            "now() - (g % (29 * 86400)) * interval '1 second', "
            "CASE WHEN g % 10 = 0 OR (g % 2 = 1 AND g % 10 = 3) THEN now() END "
            f"FROM generate_series(1, {s.runs}) g",
        ),
        (
            "journey steps",
            "INSERT INTO journey_steps (run_id, journey_id, contact_id, step_id, type, status, due_at, "
            "branch, created_at, finished_at) SELECT r.id, r.journey_id, r.contact_id, st.step_id, "
            "st.type, 'done', "
            "r.entered_at, CASE WHEN st.type = 'split' THEN (CASE WHEN right(r.id, 1)::int % 2 = 0 "
            "THEN 'A' ELSE 'B' END) END, r.entered_at, r.entered_at FROM journey_runs r CROSS JOIN "
            "(VALUES ('send1', 'send_email'), ('split1', 'split'), ('send2', 'send_email')) "
            "st(step_id, type)",
        ),
    ]


# ---- the same numbers from the raw event log (period bounds :cs, :ce, :ps, :pe) ------------------------

CUR = "at >= :cs AND at < :ce"
PREV = "at >= :ps AND at < :pe"
FIRSTS = """
    SELECT e.contact_id, e.properties->>'to' AS stage, e.timestamp AS at, e.id
    FROM events e JOIN (
        SELECT min(id) AS id FROM events
        WHERE event = 'leadflow.stage_changed' AND contact_id IS NOT NULL AND properties->>'to' IS NOT NULL
        GROUP BY contact_id, properties->>'to') f ON f.id = e.id
    UNION ALL
    SELECT e.contact_id, 'visitor', e.timestamp, e.id
    FROM events e JOIN (
        SELECT min(id) AS id FROM events WHERE contact_id IS NOT NULL AND source <> 'internal'
        GROUP BY contact_id) v ON v.id = e.id"""
RAW_STAGES = f"""
    SELECT stage, count(*) FILTER (WHERE {CUR}), count(*) FILTER (WHERE {PREV})
    FROM ({FIRSTS}) firsts GROUP BY stage"""
PAIRS = "(('visitor','lead'),('lead','mql'),('mql','sql'),('sql','customer'),('customer','advocate'))"
RAW_MEDIANS = f"""
    WITH firsts AS MATERIALIZED ({FIRSTS})
    SELECT b.stage,
        percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM b.at - a.at))
            FILTER (WHERE b.at >= :cs AND b.at < :ce),
        percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM b.at - a.at))
            FILTER (WHERE b.at >= :ps AND b.at < :pe)
    FROM firsts a JOIN firsts b ON a.contact_id = b.contact_id AND (a.stage, b.stage) IN {PAIRS}
    WHERE b.at >= a.at AND b.at >= :ps AND b.at < :ce
    GROUP BY b.stage"""
EMAIL_METRIC = (
    "substr(event, 16) || CASE WHEN (properties->'machine_generated')::boolean IS TRUE "
    "THEN '.machine' ELSE '' END"
)
EMAIL_KEYS = {
    "": "''",
    "template": "properties->>'template_id'",
    "journey": "properties->>'journey_id'",
    "step": "(properties->>'journey_id') || ':' || (properties->>'step_id')",
    "broadcast": "properties->>'broadcast_id'",
}


def raw_email(dimension: str) -> str:
    return f"""
    SELECT key, metric, count(*) FILTER (WHERE {CUR}), count(*) FILTER (WHERE {PREV}) FROM (
        SELECT {EMAIL_KEYS[dimension]} AS key, {EMAIL_METRIC} AS metric, timestamp AS at FROM events
        WHERE event LIKE 'leadflow.email_%' AND timestamp >= :ps AND timestamp < :ce) x
    WHERE key IS NOT NULL GROUP BY key, metric"""


RAW_SOURCES = f"""
    WITH leads AS (
        SELECT e.id, e.contact_id, e.timestamp AS at FROM events e JOIN (
            SELECT min(id) AS id FROM events
            WHERE event = 'leadflow.stage_changed' AND properties->>'to' = 'lead' AND contact_id IS NOT NULL
            GROUP BY contact_id) f ON f.id = e.id
        WHERE e.timestamp >= :ps AND e.timestamp < :ce)
    SELECT coalesce(t.source, '(direct)'), coalesce(t.medium, '(none)'), coalesce(t.campaign, '(none)'),
        count(*) FILTER (WHERE {CUR}), count(*) FILTER (WHERE {PREV})
    FROM leads l LEFT JOIN LATERAL (
        SELECT source, medium, campaign FROM touchpoints tp
        WHERE tp.contact_id = l.contact_id AND tp.event_id <= l.id AND tp.kind = 'page'
        ORDER BY occurred_at, id LIMIT 1) t ON true
    GROUP BY 1, 2, 3"""
RAW_LINKS = f"""
    SELECT properties->>'url', {EMAIL_METRIC}, count(*) FROM events
    WHERE event = 'leadflow.email_clicked' AND properties->>'template_id' = 't1'
        AND properties->>'url' IS NOT NULL AND timestamp >= :cs AND timestamp < :ce
    GROUP BY 1, 2"""
