"""Sources read devices and return typed samples; they never talk to the database.

A source kind lives in one folder, `sources/<kind>/`: its config model, its client, its pure
decoding, its `Source`, its templates or fixtures and, optionally, its CLI group. A kind's folder
imports nothing from another kind's folder (tests/collector/test_source_rooms.py checks it);
what kinds share lives beside them: `passwords.py` here, and `counters.py`, `statefile.py`,
`models.py`, `throttle.py` in the package.

Adding a kind `acme`
--------------------
1. `sources/acme/config.py`: a pydantic model (subclass `homewatt_common.configmodel
   .ConfigModel`: strict, unknown keys refused) with `kind: Literal["acme"] = "acme"`, the
   fields with a `description` each (they make the JSON Schema), and `describe() -> str`, one
   line for `check-config`. Secrets are never in it: name a file or a systemd credential and
   read it with `sources.passwords` (ConfigError naming the key and the file).
2. `sources/acme/__init__.py`: export the config model and `create(config, site, state_dir)
   -> Source`, the factory (import heavy client libraries inside it, so other kinds do not pay
   for them at start-up); optionally `read_secrets(config)`, which reads every secret the
   config names as `create` would (`check-config` calls it unless `--no-secrets`), and
   `check(config)`, what check-config should warn about beyond validation.
3. One registration line below: `SOURCES.register("acme", SourceKind(acme.AcmeSourceConfig,
   acme.create, acme.read_secrets))`. The config's `source:` union (config.py), its JSON
   Schema (`homewatt-collector schema`) and the `kind:` error messages follow from it;
   regenerate collector/collector-config.schema.json.
4. Optionally `sources/acme/cli.py` with a typer group for the kind's own commands
   (`homewatt-collector acme ...`), added to the app by one line in cli/app.py's KIND_COMMANDS.

The `Source` protocol is below; `DemoSource` (sources/demo/source.py) is the smallest example.
"""

from __future__ import annotations

import threading
import typing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Protocol, runtime_checkable

from pydantic import BaseModel, Field

from homewatt_collector.models import Reading
from homewatt_collector.registry import Registry
from homewatt_collector.sources import demo, emporia, modbus, shelly


class Source(Protocol):
    """One instance's source: opened once, read once per cycle, closed at stop.

    Life cycle: `open()`, then `read(ts)` every `interval_s` seconds from one thread (the
    collector's loop), then `close()`. The loop never stops for a source: whatever `open` raises
    is logged in one line, counted (`worker_restarts` in `homewatt_health`) and `open` is called
    again after a growing pause (1 s, doubling, at most 60 s); whatever `read` raises costs that
    cycle's samples (one read error), never the next cycle.

    `read(ts)` returns a `Reading` (models.py):
    - `samples`: `Sample(measurement, tags, fields, ts)`, each stamped with the `ts` it was given:
      the cycle's slot, UTC unix time in whole seconds (not the time the device answered).
      Measurement `electricity` (models.ELECTRICITY) for what a device measures.
    - Tags, all required: `site` (the config's, passed to the factory), `source` (the kind's
      name), `device` (the device's name from the config, else the device's own), `channel`
      (`l1`|`l2`|`l3`|`total` for phases, or a circuit or relay name), `model`. Names a user
      writes in the config match `[A-Za-z0-9][A-Za-z0-9_.-]*`. A series is (measurement, tags):
      keep them stable across restarts. (A kind may offer another tool's schema for its users'
      dashboards, as `emporia`'s `schema: vuegraf`; homewatt's stays the default.)
    - Fields in SI units, the unit in the name (design.md, "Data model"; README, "Data model"):
      `power_w` (W), `voltage_v` (V), `current_a` (A), `frequency_hz` (Hz), `power_factor`,
      `reactive_power_var` (var), `apparent_power_va` (VA), energy counters `energy_total_kwh`,
      `energy_import_kwh`, `energy_export_kwh`, `energy_t1_kwh`... (kWh) and
      `reactive_energy_*_kvarh` (kvarh); int or float values. A field that could not be read
      this cycle is left out, not sent as 0; a sample line protocol cannot carry (an empty tag,
      every field NaN) is dropped by the loop and counted as a read error. Never rename a field.
    - Energy comes from the device's own cumulative counter, never from power x interval, and
      goes through the counter rule (counters.py: `CounterGuard`): monotonic per series, a
      genuine reset absorbed by an offset, an implausible jump rejected and counted. Its
      baselines and offsets live in `state_dir` (the instance's state directory, given to the
      factory; None in one-shot commands: then nothing is persisted), under a file name of the
      kind's choosing written atomically (statefile.py). A kind keeps there whatever else must
      survive a restart (login tokens with mode 0600, high-water marks of a backfill).
    - `errors`: faults of this cycle that did not stop it: a device that did not answer, a
      garbled or refused answer, an impossible value, a rejected counter reading. Count each one
      here (and leave its fields out) instead of raising: the other devices' samples still go
      out. They are written as `read_errors` in `homewatt_health`.
    - `devices`: one `DeviceStatus(device, model, errors, timeouts, ok, backoff)` per device
      read or tried this cycle, for `homewatt_device_health` (tag `device`).

    Raise `errors.SourceError` (its message one clear line) from `open()` when the source cannot
    start (a login refused), and from `read()` only when nothing at all could be read this cycle
    for a reason the user must see (a cloud API that changed): the loop logs it as
    "source <kind>: <message>" (repeats throttled) and counts one read error. Translate a client
    library's exceptions into SourceError in one place. Any other exception is a bug: logged as
    "unexpected <type>" (its traceback with --verbose), counted in `worker_restarts`, survived.
    A device that may come back (an unplugged serial adapter, a plug switched off) is not an
    exception: count it in `errors` and try again next cycle.

    A source that polls on its own timers (a cloud API per minute, plugs each on their own
    interval) runs them in its own threads started by `open()` and stopped by `close()`, and
    `read(ts)` returns what arrived since the last call, each sample stamped with the time its
    value was measured (a minute's bucket, a backfilled gap) instead of `ts`.
    """

    kind: str

    def open(self) -> None:
        """Acquire the device (a serial port, a session, the pollers' threads). May raise
        SourceError."""

    def read(self, ts: int) -> Reading:
        """One cycle's samples, timestamped `ts` (unix seconds, UTC); faults are counted in
        Reading.errors."""

    def close(self) -> None:
        """Release the device and persist the state (counters); called once, at stop."""


@runtime_checkable
class PacedSource(Protocol):
    """A source that can keep its requests within the cycle and stop between them (a bus)."""

    def read_within(self, ts: int, until: float | None, stop: threading.Event | None) -> Reading:
        """read(ts), with no request started after `stop` is set, and optional ones (probes of
        silent devices) only if they end before `until` (monotonic seconds)."""


class SourceConfig(Protocol):
    """What every kind's config model (a pydantic model) offers the rest of the collector."""

    @property
    def kind(self) -> str: ...

    def describe(self) -> str:
        """One line for check-config: what would be read."""


@dataclass(frozen=True)
class SourceKind:
    config_model: type[BaseModel]
    # (its config model instance, site, state directory or None) -> Source
    factory: Callable[[Any, str, Path | None], Source]
    # A kind with secrets (device passwords): reads every one its config names, as the factory
    # would (ConfigError naming the key and the file); check-config calls it unless --no-secrets.
    read_secrets: Callable[[Any], object] | None = None
    # What check-config warns about beyond validation (a serial adapter not plugged in now):
    # (message, key path under `source`) pairs.
    check: Callable[[Any], list[tuple[str, tuple[str | int, ...]]]] | None = None


# One line per kind; the order is the config union's (and the JSON Schema's).
SOURCES: Registry[SourceKind] = Registry("source kind")
SOURCES.register("demo", SourceKind(demo.DemoSourceConfig, demo.create))
SOURCES.register("modbus", SourceKind(modbus.ModbusSourceConfig, modbus.create, check=modbus.check))
SOURCES.register(
    "shelly", SourceKind(shelly.ShellySourceConfig, shelly.create, shelly.read_passwords)
)
SOURCES.register(
    "emporia", SourceKind(emporia.EmporiaSourceConfig, emporia.create, emporia.read_passwords)
)


def config_union() -> object:
    """The config's `source:` type: the registered kinds' config models, a union discriminated
    by `kind` (pydantic picks the model by it and names the known kinds in an error)."""
    models = tuple(kind.config_model for kind in SOURCES.values())
    return Annotated[typing.Union[models], Field(discriminator="kind")]  # noqa: UP007 (built)


def create_source(config: SourceConfig, site: str, state_dir: Path | None = None) -> Source:
    return SOURCES.get(config.kind).factory(config, site, state_dir)
