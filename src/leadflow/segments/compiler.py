"""Rule tree → one SQL query (SQLAlchemy Core), the same semantics on SQLite and PostgreSQL.

Every leaf is made two-valued (``coalesce(..., false)``) so that ``not`` and the negated operators
(``neq``, ``not_in``, ``not_contains``) also match contacts where the field is missing. Values are
always bound parameters; field keys are validated by :mod:`leadflow.segments.fields` and bound too.

This is the one place that reads other domains' tables (events, companies, scores, tags, members):
evaluating a segment in a single statement is the point. It also reads scoring's one setting a rule
needs (the lowest score band, :func:`lowest_band`), so that nothing else in segments looks upward.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection

from leadflow.contacts import service as contacts_service
from leadflow.contacts.models import companies, contact_tags, contacts
from leadflow.events.models import events
from leadflow.kernel import config, isodates
from leadflow.kernel.db import where_in_dialect
from leadflow.kernel.text import fold
from leadflow.kernel.types import UTCDateTime
from leadflow.scoring.models import BANDS_KEY, DEFAULT_LOWEST_BAND, contact_scores
from leadflow.segments import durations, rules
from leadflow.segments.anniversaries import today_pairs
from leadflow.segments.models import segment_members
from leadflow.segments.values import Column, Expr, JsonPath, Moment, compare, fold_sql

NEGATED = {"neq": "eq", "not_in": "in", "not_contains": "contains"}
_RANK = sa.case(
    {stage: rank for rank, stage in enumerate(contacts_service.STAGES)}, value=contacts.c.lifecycle_stage
)


_OTHER_JSON = re.compile(r"^([-+0-9.e]+|true|false|null|[\[{].*)$", re.DOTALL)


def lowest_band(conn: Connection) -> str:
    """The lowest score band's name (scoring's bands setting): a contact without a score is in it, so a
    rule ``score.band eq <lowest>`` matches contacts never scored."""
    stored: Any = config.get(conn, BANDS_KEY)
    return str(stored["bands"][0]["name"]) if stored else DEFAULT_LOWEST_BAND


def _like_other_json(text: str) -> bool:
    """Could this (folded) string be how a number, boolean, object or array reads as text? Only then
    does an equality on a JSON value need its "is a string" check: without it ``"5"`` would match 5.
    Leaving the check out otherwise keeps the SQL as simple as a hand-written query, and the planner's
    estimates with it."""
    return bool(_OTHER_JSON.match(text))


def _number(value: Any) -> Expr:
    """A number bound as a float, so an integer column is never made to round it (``2.5`` is not 2)."""
    return sa.bindparam(None, float(value), type_=sa.Float())


def _false() -> Expr:
    return sa.false()


def _two_valued(expr: Expr) -> Expr:
    return sa.func.coalesce(expr, _false())


class Compiler:
    """Compiles rules for the evaluation instant ``now``.

    Every value that depends on the instant ("30 days ago") is a named bind parameter with a recipe in
    :attr:`deferred`, so a compiled statement can be reused later with :meth:`params` for a new instant;
    only ``anniversary_today`` bakes the day into the statement (:attr:`dated`).
    """

    def __init__(self, dialect: str, now: datetime, *, lowest_band: str = "cold", prefix: str = "p") -> None:
        self.dialect = dialect
        self.now = now
        self.lowest_band = lowest_band
        self.prefix = prefix
        self.needs_company = False
        self.needs_scores = False
        self.dated = False
        self.deferred: dict[str, Moment] = {}
        self.restrict: tuple[Sequence[str], str | None] | None = None

    def bind(self, moment: Moment, type_: Any) -> Expr:
        key = f"{self.prefix}_t{len(self.deferred)}"
        self.deferred[key] = moment
        return sa.bindparam(key, moment(self.now), type_=type_)

    def params(self, now: datetime) -> dict[str, Any]:
        """The instant-dependent parameter values for evaluating at ``now``."""
        return {key: moment(now) for key, moment in self.deferred.items()}

    # ---- entry points ---------------------------------------------------------------------------
    def select_ids(
        self, rule: Any, restrict: Sequence[str] | None = None, *, restrict_key: str | None = None
    ) -> sa.Select[Any]:
        """``SELECT contacts.id`` of the contacts the rule matches (only among ``restrict`` if given; with
        ``restrict_key`` the restriction is a named parameter, to reuse the statement for other contacts)."""
        self.restrict = (restrict, restrict_key) if restrict is not None else None
        condition = self.condition(rule)
        source: Any = contacts
        if self.needs_company:
            source = source.outerjoin(companies, companies.c.id == contacts.c.company_id)
        if self.needs_scores:
            source = source.outerjoin(contact_scores, contact_scores.c.contact_id == contacts.c.id)
        query = sa.select(contacts.c.id).select_from(source).where(condition)
        restricted: sa.Select[Any] = self._only_restricted(query, contacts.c.id)
        return restricted

    def _only_restricted(self, query: Any, column: Any) -> Any:
        """Keep only the contacts being evaluated (also inside event subqueries, so that evaluating one
        contact reads that contact's events, not everyone's).

        On PostgreSQL this is ``column = ANY(:ids)``: an index condition, so evaluation starts from the
        given contacts' rows whatever the rule's shape (an ``OR`` of behaviours would otherwise scan
        every contact and join to the few wanted ones afterwards).
        """
        if self.restrict is None:
            return query
        ids, key = self.restrict
        if self.dialect != "postgresql":
            return where_in_dialect(self.dialect, query, column, ids, key=key)
        wanted = sa.bindparam(key, list(ids), type_=postgresql.ARRAY(sa.String()), unique=key is None)
        return query.where(column == sa.any_(wanted))

    def condition(self, rule: Any, *, negated: bool = False) -> Expr:
        """The rule as a SQL condition. Under a ``not`` every leaf is made two-valued (NULL → false) so
        that negation is exact; elsewhere a NULL already counts as false and is left alone."""
        if isinstance(rule, rules.All):
            return sa.and_(*(self.condition(child, negated=negated) for child in rule.all))
        if isinstance(rule, rules.AnyOf):
            return sa.or_(*(self.condition(child, negated=negated) for child in rule.any))
        if isinstance(rule, rules.Not):
            return sa.not_(self.condition(rule.rule, negated=True))
        if isinstance(rule, rules.Attribute):
            found = self._attribute(rule)
            return _two_valued(found) if negated else found
        if isinstance(rule, rules.Behaviour):
            return self._behaviour(rule)
        if isinstance(rule, rules.Engagement):
            return self._engagement(rule)
        if isinstance(rule, rules.Membership):
            member = sa.exists().where(
                segment_members.c.segment_id == rule.segment, segment_members.c.contact_id == contacts.c.id
            )
            return member if rule.member else sa.not_(member)
        raise TypeError(f"not a rule: {rule!r}")  # pragma: no cover - the parser admits nothing else

    # ---- attributes ------------------------------------------------------------------------------
    def _attribute(self, node: rules.Attribute) -> Expr:
        if node.ref.kind == "tags":
            return self._tags(node.op, node.value)
        return self.compare(self._source(node.ref), node.op, node.value, node.ref.kind)

    def _source(self, ref: Any) -> Column | JsonPath:
        if ref.table == "companies":
            self.needs_company = True
            if ref.kind == "json":
                return JsonPath(self.dialect, companies.c.traits, ref.keys)
            return Column(self.dialect, companies.c[ref.column], ref.kind)
        if ref.table == "scores":
            self.needs_scores = True
            column = contact_scores.c[ref.column]
            default = self.lowest_band if ref.column == "band" else 0.0
            return Column(self.dialect, sa.func.coalesce(column, default), ref.kind)
        if ref.kind == "json":
            return JsonPath(self.dialect, contacts.c[ref.column], ref.keys)
        return Column(self.dialect, contacts.c[ref.column], ref.kind)

    def compare(self, source: Column | JsonPath, op: str, value: Any, kind: str) -> Expr:
        """One condition on one typed value; may be NULL where SQL is three-valued."""
        if op == "is_set":
            return source.present()
        if op == "is_not_set":
            return sa.not_(_two_valued(source.present()))
        if op in NEGATED:
            return sa.not_(_two_valued(self.compare(source, NEGATED[op], value, kind)))
        if op == "eq":
            return self._equals(source, value)
        if op == "in":
            return self._one_of(source, value)
        if op in ("contains", "starts_with", "ends_with"):
            return self._text_match(source, op, value)
        if op in ("gt", "gte", "lt", "lte", "between"):
            return self._order(source, op, value, kind)
        return self._date(source, op, value)

    def _equals(self, source: Column | JsonPath, value: Any) -> Expr:
        return self._one_of(source, [value])

    def _one_of(self, source: Column | JsonPath, values: list[Any]) -> Expr:
        """Equal to one of ``values``: one ``IN`` per type (strings fold case; types never mix)."""
        parts: list[Expr] = []
        strings = [fold(v) for v in values if isinstance(v, str)]
        numbers = [v for v in values if not isinstance(v, str | bool)]
        booleans = [int(v) for v in values if isinstance(v, bool)]
        text = source.raw_text()
        if strings and text is not None:
            folded = fold_sql(self.dialect, text)
            found = folded == strings[0] if len(strings) == 1 else folded.in_(strings)
            parts.append(self._as_string(source, found) if any(map(_like_other_json, strings)) else found)
        number = source.number()
        if numbers and number is not None:
            bound = [_number(v) for v in numbers]
            parts.append(number == bound[0] if len(bound) == 1 else number.in_(bound))
        truth = source.boolean()
        if booleans and truth is not None:
            parts.append(truth.in_(booleans))
        if not parts:
            return _false()
        return parts[0] if len(parts) == 1 else sa.or_(*parts)

    @staticmethod
    def _as_string(source: Column | JsonPath, condition: Expr) -> Expr:
        """``condition`` on the raw text, and the value really is a string (checked second: cheaper)."""
        guard = source.string_guard()
        return condition if guard is None else sa.and_(condition, guard)

    def _text_match(self, source: Column | JsonPath, op: str, value: str) -> Expr:
        text = source.raw_text()
        if text is None:
            return _false()
        folded, needle = fold_sql(self.dialect, text), fold(value)
        if op == "contains":
            position = sa.func.strpos if self.dialect == "postgresql" else sa.func.instr
            found: Expr = position(folded, needle) > 0
        elif op == "starts_with":
            found = sa.func.substr(folded, 1, len(needle)) == needle
        elif self.dialect == "postgresql":
            found = sa.func.right(folded, len(needle)) == needle
        else:
            found = sa.and_(
                sa.func.length(folded) >= len(needle), sa.func.substr(folded, -len(needle)) == needle
            )
        return self._as_string(source, found)

    def _order(self, source: Column | JsonPath, op: str, value: Any, kind: str) -> Expr:
        if kind == "stage":
            number: Expr | None = _RANK
            value = contacts_service.stage_rank(value)
        else:
            number = source.number()
        if number is None:
            return _false()
        if op == "between":
            return number.between(_number(value[0]), _number(value[1]))
        return compare(number, {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}[op], _number(value))

    def _date(self, source: Column | JsonPath, op: str, value: Any) -> Expr:
        if op == "anniversary_today":
            return self._anniversary(source)
        if op in ("before", "after"):
            moment = isodates.parse(value)
            assert moment is not None
            found = source.instant_compare("<" if op == "before" else ">", lambda _: moment, self.bind)
            return _false() if found is None else found
        span = durations.parse(value)
        if op == "more_than_ago":
            found = source.instant_compare("<", lambda now: now - span, self.bind)
            return _false() if found is None else found
        lower = source.instant_compare(">=", lambda now: now - span, self.bind)
        upper = source.instant_compare("<=", lambda now: now, self.bind)
        return _false() if lower is None or upper is None else sa.and_(lower, upper)

    def _anniversary(self, source: Column | JsonPath) -> Expr:
        """The date's month and day is today where the contact lives (UTC when unknown); a 29 February
        is celebrated on the 28th in other years."""
        month_day = source.month_day()
        if month_day is None:
            return _false()
        zone = sa.func.coalesce(contacts.c.timezone, "UTC")
        pairs = today_pairs(self.now)
        self.dated = True
        if self.dialect == "postgresql":
            days = sa.values(sa.column("zone", sa.String), sa.column("today", sa.String), name="days")
            return sa.tuple_(zone, month_day).in_(sa.select(days.data(pairs)))
        return (zone + " " + month_day).in_([f"{z} {d}" for z, d in pairs])

    def _tags(self, op: str, value: Any) -> Expr:
        tagged = sa.exists().where(contact_tags.c.contact_id == contacts.c.id)
        if op in ("is_set", "is_not_set"):
            return tagged if op == "is_set" else sa.not_(tagged)
        wanted = (
            [fold(value.strip())] if op in ("contains", "not_contains") else [fold(v.strip()) for v in value]
        )
        found = tagged.where(contact_tags.c.tag.in_(wanted))
        return sa.not_(found) if op in NEGATED else found

    # ---- behaviour -------------------------------------------------------------------------------
    def _behaviour(self, node: rules.Behaviour) -> Expr:
        e = events.alias()
        where = [e.c.contact_id.is_not(None), *self.event_filter(e, node)]
        return self._occurrences(e, where, node.within, node.counting, node.first, node.last, node.total)

    def event_filter(self, e: Any, node: rules.Behaviour) -> list[Expr]:
        """The conditions an event row ``e`` must meet to be one occurrence of ``node``."""
        where: list[Expr] = []
        if node.event is not None:
            where += [e.c.type == "track", e.c.event == node.event]
        else:
            where.append(e.c.type == "page")
            if node.page != "*":
                where.append(e.c.name == node.page)
        for condition in node.where:
            source = JsonPath(self.dialect, e.c.properties, condition.ref.keys)
            where.append(self.compare(source, condition.op, condition.value, "json"))
        return where

    def select_event_ids(self, node: rules.Behaviour, event_ids: Sequence[int]) -> sa.Select[Any]:
        """``SELECT events.id`` of those of ``event_ids`` that are occurrences of ``node`` (journey
        triggers and scoring's counters share the segment language's semantics)."""
        query = sa.select(events.c.id).where(*self.event_filter(events, node))
        selected: sa.Select[Any] = where_in_dialect(self.dialect, query, events.c.id, list(event_ids))
        return selected

    def last_occurrences(
        self, node: rules.Behaviour, contact_ids: Sequence[str], since: datetime
    ) -> sa.Select[Any]:
        """``(contact_id, last)``: when each of ``contact_ids`` that did ``node`` at or after ``since``
        last did (a journey's goal step)."""
        query = (
            sa.select(events.c.contact_id, sa.func.max(events.c.timestamp))
            .where(events.c.timestamp >= since, *self.event_filter(events, node))
            .group_by(events.c.contact_id)
        )
        selected: sa.Select[Any] = where_in_dialect(
            self.dialect, query, events.c.contact_id, list(contact_ids)
        )
        return selected

    def daily_occurrences(self, node: rules.Behaviour, tag: str) -> sa.Select[Any]:
        """``(contact_id, tag, day, occurrences)``: the human occurrences of ``node`` in the whole event
        log, per contact and UTC day (scoring rebuilds a rule's counters from it, ``tag`` its id)."""
        e = events.alias()
        if self.dialect == "postgresql":
            day: Expr = sa.cast(sa.func.timezone("UTC", e.c.timestamp), sa.Date)
        else:
            day = sa.func.date(e.c.timestamp)
        return (
            sa.select(e.c.contact_id, sa.literal(tag), day, sa.func.count())
            .where(e.c.contact_id.is_not(None), *self.event_filter(e, node), self.human(e))
            .group_by(e.c.contact_id, day)
        )

    def human(self, e: Any) -> Expr:
        """The event was not machine-generated (security scanners, privacy proxies)."""
        machine = JsonPath(self.dialect, e.c.properties, ("machine_generated",)).boolean()
        return sa.not_(_two_valued(machine == 1))

    def _engagement(self, node: rules.Engagement) -> Expr:
        e = events.alias()
        where: list[Expr] = [
            e.c.contact_id.is_not(None),
            e.c.type == "track",
            e.c.event == rules.EMAIL_EVENTS[node.email],
        ]
        for key, value in (("journey_id", node.journey), ("message_id", node.message)):
            if value is not None:
                where.append(self._equals(JsonPath(self.dialect, e.c.properties, (key,)), value))
        if not node.include_machine_generated:
            where.append(self.human(e))
        return self._occurrences(e, where, node.within, node.counting, None, None)

    def _occurrences(
        self,
        e: Any,
        where: list[Expr],
        within: str | None,
        count: rules.Count,
        first: rules.When | None,
        last: rules.When | None,
        total: rules.Total | None = None,
    ) -> Expr:
        """Contacts whose matching events satisfy the count (and first/last date) conditions.

        Shaped as a semi-join (``IN``) when having no events fails the rule, and as an anti-join of the
        contacts whose count fails (``NOT EXISTS`` / ``NOT IN``) when zero events pass it ("did not do").
        """
        if within is not None:
            span = durations.parse(within)
            where.append(e.c.timestamp >= self.bind(lambda now: now - span, UTCDateTime()))
        tally = sa.func.count()
        grouped = self._only_restricted(sa.select(e.c.contact_id).where(*where), e.c.contact_id)
        grouped = grouped.group_by(e.c.contact_id)
        having = [self._count(tally, count)]
        if total is not None:
            amount = JsonPath(self.dialect, e.c.properties, total.keys).number()
            # SQLite's sum() of integers fails past 64 bits ("integer overflow"); total() adds as
            # floats, as PostgreSQL does here, and is 0.0 when nothing counts.
            summed = (
                sa.func.total(amount)
                if self.dialect == "sqlite"
                else sa.func.sum(sa.func.coalesce(amount, 0.0))
            )
            having.append(self._count(sa.func.coalesce(summed, 0.0), total))
        for when, moment in ((first, sa.func.min(e.c.timestamp)), (last, sa.func.max(e.c.timestamp))):
            if when is not None:
                having.append(self._date(Column(self.dialect, moment, "datetime"), when.op, when.value))
        if first is None and last is None and count.holds(0) and (total is None or total.holds(0.0)):
            return sa.not_(self._member_of(grouped.having(sa.not_(sa.and_(*having)))))
        return self._member_of(grouped.having(sa.and_(*having)))

    def _member_of(self, contact_ids: sa.Select[Any]) -> Expr:
        """``contacts.id`` is among ``contact_ids``: ``EXISTS`` over a derived table on PostgreSQL, which
        it plans as a hashed semi-join (anti-join when negated) however deeply nested; ``IN`` on SQLite."""
        if self.dialect == "postgresql":
            found = contact_ids.subquery()
            return sa.exists().where(found.c.contact_id == contacts.c.id)
        return contacts.c.id.in_(contact_ids)

    @staticmethod
    def _count(tally: Expr, count: rules.Count | rules.Total) -> Expr:
        value = getattr(count, count.op)
        if count.op == "between":
            return tally.between(value[0], value[1])
        if count.op == "eq":
            equal: Expr = tally == value
            return equal
        return compare(tally, {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}[count.op], value)
