"""One RS485 line: a pymodbus serial client, its faults translated here into three kinds.

- NoResponse: the meter stayed silent (or only noise/CRC-broken frames came back) in time;
- ModbusExceptionResponse: the meter answered with an exception code (2: illegal address...);
- PortUnavailable: the serial port failed or is gone (adapter unplugged). The port is closed
  and reopened on the next read, so a returning adapter is picked up again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from pymodbus.client import ModbusSerialClient
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException

from homewatt_collector.errors import SourceError
from homewatt_collector.meters import SerialSettings
from homewatt_collector.modbus.plan import Block

log = logging.getLogger(__name__)

EXCEPTION_NAMES = {
    1: "illegal function",
    2: "illegal data address",
    3: "illegal data value",
    4: "device failure",
    5: "acknowledge",
    6: "device busy",
    10: "gateway path unavailable",
    11: "gateway target failed to respond",
}


class NoResponse(SourceError):
    pass


class ModbusExceptionResponse(SourceError):
    def __init__(self, device_id: int, code: int) -> None:
        name = EXCEPTION_NAMES.get(code, "unknown")
        super().__init__(f"device {device_id} answered exception {code} ({name})")
        self.code = code


class PortUnavailable(SourceError):
    pass


ClientFactory = Callable[..., ModbusSerialClient]


class ModbusBus:
    def __init__(
        self, port: str, serial: SerialSettings, client_factory: ClientFactory = ModbusSerialClient
    ) -> None:
        self.port = port
        self.serial = serial
        self._factory = client_factory
        self._client: ModbusSerialClient | None = None
        self._available: bool | None = None  # last known state, to log changes only

    @property
    def is_open(self) -> bool:
        return self._client is not None and self._client.connected

    def open(self) -> bool:
        """Open the port if it is not; False (logged once) while it is missing or failing."""
        if self.is_open:
            return True
        client = self._factory(
            self.port,
            baudrate=self.serial.baudrate,
            parity=self.serial.parity,
            bytesize=self.serial.bytesize,
            stopbits=self.serial.stopbits,
            timeout=0.5,
            retries=0,  # retries are per meter, done in read()
            reconnect_delay=0,
        )
        # A silent meter must not make pymodbus give up on the line: we decide what to do.
        client.set_max_no_responses(1_000_000_000)
        present = Path(self.port).exists()
        if not present or not client.connect():
            client.close()  # type: ignore[no-untyped-call]
            self._note_available(False, "cannot be opened" if present else "is not there")
            return False
        self._client = client
        self._note_available(True)
        return True

    def close(self) -> None:
        if self._client is not None:
            self._client.close()  # type: ignore[no-untyped-call]
            self._client = None

    def read(self, block: Block, device_id: int, timeout_s: float, retries: int = 0) -> list[int]:
        """The registers of `block` from `device_id`; raises one of this module's errors."""
        if not self.open():
            raise PortUnavailable(f"serial port {self.port} is not available")
        client = self._client
        assert client is not None
        client.comm_params.timeout_connect = timeout_s  # pymodbus reads it per request
        for attempt in range(retries + 1):
            try:
                if block.function == 3:
                    response = client.read_holding_registers(
                        block.start, count=block.count, device_id=device_id
                    )
                else:
                    response = client.read_input_registers(
                        block.start, count=block.count, device_id=device_id
                    )
            except ModbusIOException as exc:
                if attempt < retries:
                    continue
                raise NoResponse(f"device {device_id}: no valid response in {timeout_s} s") from exc
            except ConnectionException as exc:
                self.close()
                self._note_available(False, "failed")
                raise PortUnavailable(f"serial port {self.port} failed") from exc
            except ModbusException as exc:
                raise NoResponse(f"device {device_id}: {exc}") from exc
            except OSError as exc:  # pyserial raises OS-level errors pymodbus does not wrap
                self.close()
                self._note_available(False, str(exc))
                raise PortUnavailable(f"serial port {self.port}: {exc}") from exc
            if response.isError():
                raise ModbusExceptionResponse(
                    device_id, int(getattr(response, "exception_code", 0))
                )
            registers = list(response.registers)
            if len(registers) != block.count:
                raise NoResponse(
                    f"device {device_id}: {len(registers)} registers, asked for {block.count}"
                )
            return registers
        raise AssertionError("unreachable")  # pragma: no cover

    def _note_available(self, available: bool, why: str = "") -> None:
        if available == self._available:
            return
        if available:
            if self._available is False:
                log.info("serial port %s is back", self.port)
        else:
            log.warning("serial port %s %s; waiting for it to come back", self.port, why)
        self._available = available
