"""One RS485 line: a pymodbus serial client, its faults translated here into three kinds.

- NoResponse: the meter stayed silent (or only noise/CRC-broken frames came back) in time;
- ModbusExceptionResponse: the meter answered with an exception code (2: illegal address...);
- PortUnavailable: the serial port failed, is gone (adapter unplugged) or may not be opened
  (permission denied: not in group dialout); the message says which, and the fix. The port is
  closed and reopened on the next read, so a returning adapter is picked up again.
"""

from __future__ import annotations

import errno
import logging
import os
import select
import time
from collections.abc import Callable

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


class SerialClient(ModbusSerialClient):
    """pymodbus's serial client, waiting for a response in select() instead of polling.

    pymodbus 3.16 (client/serial.py `_wait_for_data`) asks the port how many bytes wait every
    4 character times (4 ms at 9600 baud) until the response is complete or the timeout is
    over: about 85 % of the collector's CPU time on a 9600-baud line (bench/README.md). Here
    the process sleeps in select() until bytes arrive and hands over what came; pymodbus's
    transaction collects the pieces until its framer has a whole frame, as before. The
    timeout counts from the request, so a meter that answers in pieces cannot stretch it.
    """

    _response_deadline = 0.0

    def send(self, request: bytes, addr: tuple[str, int] | None = None) -> int:
        self._response_deadline = time.monotonic() + self.comm_params.timeout_connect
        return int(super().send(request, addr))

    def recv(self, size: int | None) -> bytes:
        port = self.socket
        if size is not None or port is None:
            return bytes(super().recv(size))
        fd = port.fileno()
        while (remaining := self._response_deadline - time.monotonic()) > 0:
            try:
                readable, _, _ = select.select([fd], [], [], remaining)
                if not readable:
                    break
                data = os.read(fd, 4096)  # pyserial opened it non-blocking: what has arrived
            except BlockingIOError:
                continue  # woken without data: wait on until the deadline
            except OSError:
                self.close()  # type: ignore[no-untyped-call]
                raise ConnectionException(str(self)) from None
            if not data:  # end of file: the adapter is gone
                self.close()  # type: ignore[no-untyped-call]
                raise ConnectionException(str(self))
            return data
        return b""  # pymodbus takes no data as the end of the wait: a timeout


ClientFactory = Callable[..., ModbusSerialClient]


def port_problem(port: str) -> str | None:
    """Why `port` cannot be opened (a sentence naming it and the fix), or None if it can."""
    try:
        fd = os.open(port, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    except FileNotFoundError:
        return (
            f"serial port {port} is not there (is the adapter plugged in?"
            " ls /dev/serial/by-id/ lists what is)"
        )
    except PermissionError:
        return (
            f"serial port {port}: permission denied: this user is not in group dialout"
            " (sudo usermod -aG dialout $USER, then log in again; the unit gets the group from"
            " its serial drop-in)"
        )
    except OSError as exc:
        if exc.errno == errno.EBUSY:
            return f"serial port {port} is in use by another program"
        return f"serial port {port} cannot be opened: {exc.strerror or exc}"
    os.close(fd)
    return None


class ModbusBus:
    def __init__(
        self,
        port: str,
        serial: SerialSettings,
        client_factory: ClientFactory = SerialClient,
        announce: bool = True,
    ) -> None:
        """`announce`: log when the port goes away and comes back (the service); a one-shot
        command (read, scan) says it in its error instead."""
        self.port = port
        self.announce = announce
        self.serial = serial
        self._factory = client_factory
        self._client: ModbusSerialClient | None = None
        self._available: bool | None = None  # last known state, to log changes only
        self.problem: str | None = None  # why the port is not available, when it is not

    @property
    def is_open(self) -> bool:
        return self._client is not None and self._client.connected

    def open(self) -> bool:
        """Open the port if it is not; False (logged once, `problem` says why) while it is
        missing, failing or may not be opened."""
        if self.is_open:
            return True
        problem = port_problem(self.port)
        if problem is not None:
            self._note_available(False, problem)
            return False
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
        if not client.connect():
            client.close()  # type: ignore[no-untyped-call]
            self._note_available(False, f"serial port {self.port} cannot be opened")
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
            raise PortUnavailable(self.problem or f"serial port {self.port} is not available")
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
                raise NoResponse(
                    f"device {device_id}: no valid response in {timeout_s:.3g} s"
                ) from exc
            except ConnectionException as exc:
                self.close()
                self._note_available(False, f"serial port {self.port} failed")
                raise PortUnavailable(f"serial port {self.port} failed") from exc
            except ModbusException as exc:
                raise NoResponse(f"device {device_id}: {exc}") from exc
            except OSError as exc:  # pyserial raises OS-level errors pymodbus does not wrap
                self.close()
                self._note_available(False, f"serial port {self.port}: {exc}")
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

    def _note_available(self, available: bool, problem: str = "") -> None:
        self.problem = None if available else problem
        if available == self._available or not self.announce:
            self._available = available
            return
        if available:
            if self._available is False:
                log.info("serial port %s is back", self.port)
        else:
            log.warning("%s; waiting for it to come back", problem)
        self._available = available
