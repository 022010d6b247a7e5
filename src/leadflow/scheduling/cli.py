"""``leadflow scheduling ...``: consultants and their booking profiles, free slots, bookings, pending
consultation requests and ICS feeds, from the command line.

Weekly hours are written ``DAYS=HH:MM-HH:MM[,HH:MM-HH:MM]`` in the consultant's own zone, ``DAYS``
one day (``mon``), a range (``mon-fri``) or a list (``sat,sun`` is two options: ``--hours sat=…
--hours sun=…``); services ``NAME:MINUTES``.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import typer

from leadflow.kernel.commands import CLI_ACTOR, console, open_context, require_schema
from leadflow.kernel.errors import Invalid
from leadflow.scheduling import booking, feed, profiles
from leadflow.scheduling.schemas import Profile, ProfileCreate, ProfileFields, zone_of
from leadflow.scheduling.slots import DAYS

scheduling_app = typer.Typer(help="Consultation booking: consultants, slots, bookings.", no_args_is_help=True)
consultants_app = typer.Typer(help="Consultants (CRM users who can be booked).", no_args_is_help=True)
bookings_app = typer.Typer(help="Booked (and cancelled) consultations.", no_args_is_help=True)
requests_app = typer.Typer(
    help="Consultation requests (pending ones wait for a person).", no_args_is_help=True
)
feeds_app = typer.Typer(help="Consultants' ICS feeds (busy times).", no_args_is_help=True)
scheduling_app.add_typer(consultants_app, name="consultants")
scheduling_app.add_typer(bookings_app, name="bookings")
scheduling_app.add_typer(requests_app, name="requests")
scheduling_app.add_typer(feeds_app, name="feeds")

_HOURS = re.compile(r"(?P<days>[a-z]{3}(?:-[a-z]{3})?)=(?P<windows>[0-9:,-]+)")
SERVICE_HELP = "a service NAME:MINUTES; repeat for several"
HOURS_HELP = "weekly hours DAYS=HH:MM-HH:MM[,HH:MM-HH:MM] (e.g. mon-fri=09:00-12:00,13:00-17:00); repeat"


def _rows(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    """Tab-separated lines under a header: whole ids and addresses, whatever the terminal's width."""
    for row in (header, *rows):
        typer.echo("\t".join(row))


def parse_hours(values: list[str]) -> dict[str, list[list[str]]]:
    """``["mon-fri=09:00-12:00,13:00-17:00", "sat=10:00-12:00"]`` as a profile's ``availability``."""
    found: dict[str, list[list[str]]] = {}
    for value in values:
        match = _HOURS.fullmatch(value.strip().lower())
        if match is None:
            raise typer.BadParameter(f"{value!r}: DAYS=HH:MM-HH:MM[,HH:MM-HH:MM]", param_hint="--hours")
        first, _, last = match["days"].partition("-")
        if first not in DAYS or (last or first) not in DAYS:
            raise typer.BadParameter(f"{value!r}: days are {', '.join(DAYS)}", param_hint="--hours")
        days = DAYS[DAYS.index(first) : DAYS.index(last or first) + 1]
        if not days:
            raise typer.BadParameter(f"{value!r}: a range runs forwards (mon-fri)", param_hint="--hours")
        windows = [window.split("-") for window in match["windows"].split(",")]
        for day in days:
            found.setdefault(day, []).extend(windows)
    return found


def parse_services(values: list[str]) -> list[dict[str, Any]]:
    found = []
    for value in values:
        name, colon, minutes = value.rpartition(":")
        if not colon or not name.strip() or not minutes.isdigit():
            raise typer.BadParameter(f"{value!r}: NAME:MINUTES", param_hint="--service")
        found.append({"name": name.strip(), "duration": int(minutes)})
    return found


def _when(value: str, option: str) -> datetime:
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not an ISO 8601 time", param_hint=option) from None


def _hours_text(profile: Profile) -> str:
    return " ".join(
        f"{day}={','.join('-'.join(w) for w in profile.availability[day])}"
        for day in DAYS
        if profile.availability.get(day)
    )


def _show(profile: Profile) -> None:
    console.print(
        f"{profile.user_id}: {', '.join(f'{s.name}:{s.duration}' for s in profile.services)}; "
        f"{_hours_text(profile)} ({profile.timezone}); slots of {profile.slot_minutes} min, "
        f"buffers {profile.buffer_before}/{profile.buffer_after} min, notice {profile.min_notice} min, "
        f"horizon {profile.horizon_days} days" + (f"; feed {profile.ics_url}" if profile.ics_url else "")
    )


@consultants_app.command("list")
def consultants_list() -> None:
    """List consultants and their booking profiles."""
    with open_context() as ctx:
        require_schema(ctx)
        found = profiles.listing(ctx)
    _rows(
        (
            "user",
            "services",
            "hours",
            "time zone",
            "slot",
            "buffers",
            "notice",
            "horizon",
            "feed",
            "feed error",
        ),
        [
            (
                p.user_id,
                ", ".join(f"{s.name}:{s.duration}" for s in p.services),
                _hours_text(p),
                p.timezone,
                str(p.slot_minutes),
                f"{p.buffer_before}/{p.buffer_after}",
                str(p.min_notice),
                str(p.horizon_days),
                p.ics_url or "",
                p.ics_error or "",
            )
            for p in found
        ],
    )


@consultants_app.command("add")
def consultants_add(
    user_id: str = typer.Argument(..., help="the CRM user's id"),
    service: list[str] = typer.Option(..., help=SERVICE_HELP),
    hours: list[str] = typer.Option(..., help=HOURS_HELP),
    slot_minutes: int = typer.Option(30, help="the slot grid, minutes"),
    buffer_before: int = typer.Option(0, help="minutes kept free before a meeting"),
    buffer_after: int = typer.Option(0, help="minutes kept free after a meeting"),
    notice: int = typer.Option(120, help="minimum notice, minutes"),
    horizon_days: int = typer.Option(60, help="how far ahead people may book, days"),
    ics_url: str | None = typer.Option(None, help="an ICS feed of busy times: an http(s) URL or a file path"),
) -> None:
    """Make a CRM user bookable."""
    data = ProfileCreate.model_validate(
        {
            "user_id": user_id,
            "services": parse_services(service),
            "availability": parse_hours(hours),
            "slot_minutes": slot_minutes,
            "buffer_before": buffer_before,
            "buffer_after": buffer_after,
            "min_notice": notice,
            "horizon_days": horizon_days,
            "ics_url": ics_url,
        }
    )
    with open_context() as ctx:
        require_schema(ctx)
        _show(profiles.create(ctx, data, actor=CLI_ACTOR))


@consultants_app.command("set")
def consultants_set(
    user_id: str = typer.Argument(..., help="the consultant's user id"),
    service: list[str] | None = typer.Option(None, help=SERVICE_HELP + " (replaces the list)"),
    hours: list[str] | None = typer.Option(None, help=HOURS_HELP + " (replaces the week)"),
    slot_minutes: int | None = typer.Option(None, help="the slot grid, minutes"),
    buffer_before: int | None = typer.Option(None, help="minutes kept free before a meeting"),
    buffer_after: int | None = typer.Option(None, help="minutes kept free after a meeting"),
    notice: int | None = typer.Option(None, help="minimum notice, minutes"),
    horizon_days: int | None = typer.Option(None, help="how far ahead people may book, days"),
    ics_url: str | None = typer.Option(None, help="the ICS feed: an http(s) URL or a file path"),
    no_feed: bool = typer.Option(False, "--no-feed", help="drop the ICS feed"),
) -> None:
    """Change a consultant's booking profile: what is given changes, the rest stays."""
    if no_feed and ics_url:
        raise typer.BadParameter("either --ics-url or --no-feed", param_hint="--no-feed")
    changes: dict[str, Any] = {
        "slot_minutes": slot_minutes,
        "buffer_before": buffer_before,
        "buffer_after": buffer_after,
        "min_notice": notice,
        "horizon_days": horizon_days,
        "ics_url": ics_url,
    }
    changes = {name: value for name, value in changes.items() if value is not None}
    if service:
        changes["services"] = parse_services(service)
    if hours:
        changes["availability"] = parse_hours(hours)
    if no_feed:
        changes["ics_url"] = None
    with open_context() as ctx:
        require_schema(ctx)
        current = profiles.get(ctx, user_id)
        fields = ProfileFields.model_validate(
            {**current.model_dump(include=set(ProfileFields.model_fields)), **changes}
        )
        _show(profiles.update(ctx, user_id, fields, actor=CLI_ACTOR))


@consultants_app.command("remove")
def consultants_remove(user_id: str = typer.Argument(..., help="the consultant's user id")) -> None:
    """Stop a user being bookable (their bookings stay)."""
    with open_context() as ctx:
        require_schema(ctx)
        profiles.delete(ctx, user_id, actor=CLI_ACTOR)
    console.print(f"{user_id} is no longer bookable")


@scheduling_app.command("slots")
def slots(
    service: str = typer.Option(..., help="the service's name"),
    start: str = typer.Option(..., "--from", help="ISO 8601 start (naive: in --tz)"),
    end: str = typer.Option(..., "--to", help="ISO 8601 end (naive: in --tz)"),
    tz: str = typer.Option("UTC", help="the asker's IANA time zone; slots are shown in it"),
) -> None:
    """Free slots of a service starting in a range, in the asker's time zone."""
    try:
        zone_of(tz)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--tz") from None
    low, high = _when(start, "--from"), _when(end, "--to")
    with open_context() as ctx:
        require_schema(ctx)
        found = booking.available_slots(ctx, service, low, high, tz)
    _rows(
        ("start", "end", "consultants"),
        [(s.start.isoformat(), s.end.isoformat(), ",".join(s.consultant_ids)) for s in found.data],
    )


@bookings_app.command("list")
def bookings_list(
    consultant_id: str | None = typer.Option(None, "--consultant", help="a consultant's user id"),
    after: str | None = typer.Option(None, help="the last id of the previous page"),
    limit: int = typer.Option(100, min=1, max=500),
) -> None:
    """List bookings in id order (booked and cancelled)."""
    with open_context() as ctx:
        require_schema(ctx)
        found = booking.listing(ctx, consultant_id=consultant_id, after=after, limit=limit)
    _rows(
        ("id", "consultant", "email", "service", "start", "end", "status", "sequence", "source"),
        [
            (
                b.id,
                b.consultant_id,
                b.email,
                b.service,
                b.start.isoformat(),
                b.end.isoformat(),
                b.status,
                str(b.sequence),
                b.source,
            )
            for b in found
        ],
    )


@bookings_app.command("cancel")
def bookings_cancel(
    booking_id: str = typer.Argument(..., help="the booking's id"),
    reason: str | None = typer.Option(None, help="kept with the booking"),
) -> None:
    """Cancel a booking (the invitee is sent METHOD:CANCEL); cancelling again changes nothing."""
    if reason is not None and len(reason) > 500:
        raise Invalid("a reason is at most 500 characters", code="invalid_reason")
    with open_context() as ctx:
        require_schema(ctx)
        done = booking.cancel(ctx, booking_id, reason=reason)
    console.print(f"{done.id}: {done.status}")


@requests_app.command("list")
def requests_list(
    status: str | None = typer.Option(None, help="pending or booked"),
    after: str | None = typer.Option(None, help="the last id of the previous page"),
    limit: int = typer.Option(100, min=1, max=500),
) -> None:
    """List consultation requests in id order."""
    if status is not None and status not in ("pending", "booked"):
        raise typer.BadParameter("pending or booked", param_hint="--status")
    with open_context() as ctx:
        require_schema(ctx)
        found = booking.requests(ctx, status=status, after=after, limit=limit)
    _rows(
        ("id", "email", "service", "preferred", "tz", "status", "booking", "created"),
        [
            (
                r.id,
                r.email,
                r.service,
                ",".join(r.preferred),
                r.tz,
                r.status,
                r.booking_id or "",
                r.created_at.isoformat(timespec="seconds"),
            )
            for r in found
        ],
    )


@feeds_app.command("refresh")
def feeds_refresh(
    every: bool = typer.Option(False, "--all", help="every feed, not only those older than 15 minutes"),
) -> None:
    """Read the consultants' ICS feeds now (the worker does it every 15 minutes)."""
    with open_context() as ctx:
        require_schema(ctx)
        count = feed.refresh_due(ctx, force=every)
        errors = [(p.user_id, p.ics_error) for p in profiles.listing(ctx) if p.ics_url and p.ics_error]
    console.print(f"{count} feed(s) read")
    for user_id, error in errors:
        console.print(f"{user_id}: {error}")
    if errors:
        raise typer.Exit(1)
