"""The site's tariff: /etc/homewatt/tariff.yaml (collector/tariff.example.yaml explains every key).

- `timezone`: an IANA name (Europe/Warsaw); tariff hours, weekdays, holidays and days are that
  zone's local time, so a day is 23 or 25 hours long when the clocks change.
- `currency`: an ISO 4217 code (PLN, GBP, EUR), only printed and written as it is.
- Import prices per kWh: either `import_price` (one flat price, period `flat`) or `periods`, a
  list of time-of-use periods, each `name`, `price`, optional `days` (mon..sun, holiday) and
  optional `hours` ("07-13": from 07:00 to 13:00 local; "22-06" wraps past midnight). The first
  period that matches an hour wins; a period without `days` matches every day, without `hours`
  every hour. Each hour is matched with its own local day (days [fri] with "22-06" covers
  Friday 00-06 and 22-24, never Saturday 00-06). Every hour of every kind of day must be
  covered by some period.
- `holidays`: dates (2026-12-25) that are the `holiday` day kind instead of their weekday.
- `standing_charge_per_day`: a fixed amount per local day; `export_price`: paid per kWh exported.

Prices are in `currency` per kWh (the standing charge per day); all must be finite and >= 0.
Errors: ProblemsError, one `file:line: key: problem` line each (homewatt_common.configmodel).
"""

from __future__ import annotations

import re
from datetime import date, datetime
from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, Strict, field_validator, model_validator

from homewatt_common.configmodel import ConfigModel, validate
from homewatt_common.problems import ProblemsError
from homewatt_common.yamlfile import load_yaml

DEFAULT_PATH = Path("/etc/homewatt/tariff.yaml")
EXAMPLE = "collector/tariff.example.yaml"
DayKind = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun", "holiday"]
WEEKDAYS: tuple[DayKind, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DAY_KINDS: tuple[DayKind, ...] = (*WEEKDAYS, "holiday")
DAY_NAMES = {
    "mon": "Monday",
    "tue": "Tuesday",
    "wed": "Wednesday",
    "thu": "Thursday",
    "fri": "Friday",
    "sat": "Saturday",
    "sun": "Sunday",
    "holiday": "a holiday",
}
FLAT = "flat"
_HOURS = re.compile(r"^(\d{2})-(\d{2})$")
_NAME = r"^[a-z0-9][a-z0-9_-]*$"


def hours_of(text: str) -> frozenset[int]:
    """ "07-13" -> {7, ..., 12}; "22-06" -> {22, 23, 0, ..., 5}; ValueError if malformed."""
    match = _HOURS.fullmatch(text)
    start, end = (int(match.group(1)), int(match.group(2))) if match else (-1, -1)
    if not (0 <= start <= 23 and 0 <= end <= 24 and start != end):
        raise ValueError(
            f"{text!r} is not an hour range like '07-13' (from 00 to 24, end after start,"
            " or '22-06' across midnight)"
        )
    if start < end:
        return frozenset(range(start, end))
    return frozenset((*range(start, 24), *range(end)))


class Period(ConfigModel):
    """A time-of-use period: a price for some hours of some kinds of day."""

    name: str = Field(pattern=_NAME, description="the `period` tag, e.g. peak, offpeak")
    price: float = Field(ge=0, description="currency per kWh imported")
    days: list[DayKind] | None = Field(
        None, min_length=1, description="mon..sun, holiday; default: every day"
    )
    hours: list[str] | None = Field(
        None, min_length=1, description='local hour ranges like "07-13"; default: all day'
    )

    @field_validator("hours")
    @classmethod
    def _valid_hours(cls, value: list[str] | None) -> list[str] | None:
        for text in value or ():
            hours_of(text)
        return value

    def covers(self, day: DayKind, hour: int) -> bool:
        if self.days is not None and day not in self.days:
            return False
        return self.hours is None or any(hour in hours_of(h) for h in self.hours)


class Tariff(ConfigModel):
    """The site's prices (see the module docstring)."""

    timezone: str = Field(description="IANA time zone of the site, e.g. Europe/Warsaw")
    currency: str = Field(pattern=r"^[A-Z]{3}$", description="ISO 4217 code, e.g. PLN")
    import_price: float | None = Field(None, ge=0, description="flat price per kWh imported")
    periods: list[Period] | None = Field(None, min_length=1, description="time-of-use periods")
    holidays: list[Annotated[date, Strict(False)]] = Field(
        default_factory=list, description="dates (2026-12-25) priced as day kind `holiday`"
    )
    standing_charge_per_day: float = Field(0.0, ge=0, description="currency per local day")
    export_price: float = Field(0.0, ge=0, description="currency per kWh exported")

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"{value!r} is not an IANA time zone name like Europe/Warsaw or Europe/London"
            ) from None
        return value

    @field_validator("periods")
    @classmethod
    def _unique_names_covering_every_hour(cls, periods: list[Period] | None) -> list[Period] | None:
        if periods is None:
            return None
        names = [p.name for p in periods]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"period names must be unique: {duplicates}")
        for day in DAY_KINDS:
            for hour in range(24):
                if not any(p.covers(day, hour) for p in periods):
                    raise ValueError(
                        f"no period covers {DAY_NAMES[day]} {hour:02d}:00-{hour + 1:02d}:00"
                        " (end the list with a period without days and hours)"
                    )
        return periods

    @model_validator(mode="after")
    def _one_price_scheme(self) -> Tariff:
        if (self.import_price is None) == (self.periods is None):
            raise ValueError("give either import_price (a flat price) or periods (time of use)")
        return self

    @cached_property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def period_names(self) -> list[str]:
        return [FLAT] if self.periods is None else [p.name for p in self.periods]

    def price_of(self, period: str) -> float:
        """The price per kWh of the period named `period`."""
        if self.periods is None:
            assert self.import_price is not None
            return self.import_price
        return next(p.price for p in self.periods if p.name == period)

    def day_kind(self, day: date) -> DayKind:
        return "holiday" if day in self.holidays else WEEKDAYS[day.weekday()]

    def period_at(self, local: datetime) -> tuple[str, float]:
        """(period name, price per kWh) at a local time of the site's zone."""
        if self.periods is None:
            assert self.import_price is not None
            return FLAT, self.import_price
        kind = self.day_kind(local.date())
        period = next(p for p in self.periods if p.covers(kind, local.hour))
        return period.name, period.price


def load_tariff(path: Path) -> Tariff:
    """Read and validate the tariff file; ProblemsError with one line per problem."""
    document = load_yaml(path)
    if not isinstance(document.data, dict):
        raise ProblemsError.one(str(path), f"expected a mapping of settings (see {EXAMPLE})")
    return validate(Tariff, document.data, str(path), document, example=EXAMPLE)
