"""Score bands and decay: operator configuration kept in the database.

Bands pick nurture tracks: each band starts at ``min`` (the lowest has none) and a score belongs to the
highest band it reaches. Defaults: cold < 50 ≤ warm < 80 ≤ hot. Decay: behavioural points older than
``after`` expire, or count half (``mode`` ``expire`` | ``halve``); none by default.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlalchemy.engine import Connection

from leadflow.kernel import config
from leadflow.kernel.clock import Clock
from leadflow.scoring.models import BANDS_KEY as BANDS_KEY
from leadflow.scoring.models import DEFAULT_LOWEST_BAND
from leadflow.segments import service as segments

DECAY_KEY = "scoring.decay"


class Band(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=50, pattern=r"^[a-z0-9_\-]+$")
    min: float | None = None


class Bands(BaseModel):
    model_config = ConfigDict(extra="forbid")
    bands: list[Band] = Field(min_length=1, max_length=20)

    @model_validator(mode="after")
    def _ordered(self) -> Bands:
        if self.bands[0].min is not None or any(b.min is None for b in self.bands[1:]):
            raise ValueError("the first band has no 'min' and every other band has one")
        mins = [b.min for b in self.bands[1:] if b.min is not None]
        if mins != sorted(mins) or len(set(mins)) != len(mins):
            raise ValueError("bands must be listed by increasing 'min'")
        if len({b.name for b in self.bands}) != len(self.bands):
            raise ValueError("band names must differ")
        return self

    def band_for(self, score: float) -> str:
        name = self.bands[0].name
        for band in self.bands[1:]:
            if band.min is not None and score >= band.min:
                name = band.name
        return name


DEFAULT_BANDS = Bands(
    bands=[Band(name=DEFAULT_LOWEST_BAND), Band(name="warm", min=50), Band(name="hot", min=80)]
)
COURSE_BANDS = Bands(
    bands=[
        Band(name="general"),
        Band(name="course_content", min=21),
        Band(name="sales_outreach", min=51),
        Band(name="high_intent", min=80),
    ]
)


class Decay(BaseModel):
    model_config = ConfigDict(extra="forbid")
    after: str | None = Field(default=None, description="age after which behavioural points decay, e.g. 90d")
    mode: Literal["expire", "halve"] = "expire"

    @field_validator("after")
    @classmethod
    def _duration(cls, value: str | None) -> str | None:
        if value is not None:
            segments.parse_duration(value)
        return value

    @property
    def weight(self) -> float:
        return 0.0 if self.mode == "expire" else 0.5


def bands(conn: Connection) -> Bands:
    stored: Any = config.get(conn, BANDS_KEY)
    return Bands.model_validate(stored) if stored else DEFAULT_BANDS


def lowest(conn: Connection) -> str:
    return bands(conn).bands[0].name


def decay(conn: Connection) -> Decay:
    stored: Any = config.get(conn, DECAY_KEY)
    return Decay.model_validate(stored) if stored else Decay()


def save_bands(conn: Connection, clock: Clock, value: Bands) -> None:
    config.put(conn, clock, BANDS_KEY, value.model_dump())


def save_decay(conn: Connection, clock: Clock, value: Decay) -> None:
    config.put(conn, clock, DECAY_KEY, value.model_dump())
