"""One RS485 line: reads of holding (FC03) and input (FC04) registers, faults in three kinds.

pymodbus's serial client opens and closes the port (pyserial, the line's settings) and its RTU
framer computes the CRC; the request/response exchange is this module's own: an 8-byte request
out, then select() until the answer is whole, found in what arrived and checked (device id,
function, byte count, CRC). pymodbus's transaction path (request and response objects, a
framer pass per chunk received, its logging) cost a fifth of the collector's CPU for the same
two function codes (bench/README.md), and its serial client polled the port every 4 character
times while waiting (85 % before that was replaced, in an earlier round).

- NoResponse: the meter stayed silent (or only noise/CRC-broken frames came back) in time;
- ModbusExceptionResponse: the meter answered with an exception code (2: illegal address...);
- PortUnavailable: the serial port failed, is gone (adapter unplugged) or may not be opened
  (permission denied: not in group dialout); the message says which, and the fix. The port is
  closed and reopened on the next read, so a returning adapter is picked up again.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import select
import struct
import time
from collections.abc import Callable

from pymodbus.client import ModbusSerialClient
from pymodbus.framer.rtu import FramerRTU

from homewatt_collector.errors import SourceError
from homewatt_collector.sources.modbus.meters import SerialSettings
from homewatt_collector.sources.modbus.plan import Block

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


def crc16(frame: bytes) -> bytes:
    """The Modbus RTU CRC of `frame`, as it goes on the wire (low byte first); pymodbus's
    table-driven computation (framer/rtu.py)."""
    if len(FramerRTU.crc16_table) < 256:  # pymodbus fills its table when a framer is built
        FramerRTU.crc16_table = FramerRTU.generate_crc16_table()
    return FramerRTU.compute_CRC(frame).to_bytes(2, "big")


def read_request(device_id: int, function: int, start: int, count: int) -> bytes:
    """The RTU frame asking `device_id` for `count` registers from `start` (FC03 holding,
    FC04 input registers; Modbus Application Protocol v1.1b3 6.3/6.4): 8 bytes."""
    frame = struct.pack(">BBHH", device_id, function, start, count)
    return frame + crc16(frame)


def find_response(
    buffer: bytes, device_id: int, function: int, count: int
) -> tuple[list[int] | int, int] | None:
    """The first whole, CRC-correct answer of `device_id` to an FC03/FC04 read of `count`
    registers in `buffer`: (registers, end) for data, (exception code, end) for an exception
    answer (function | 0x80, 5 bytes); None while there is none yet. Bytes before it (noise,
    a broken frame) are skipped, as a receiver resynchronising on the line would."""
    size = 5 + 2 * count
    exception = function | 0x80
    at = buffer.find(device_id)
    while 0 <= at <= len(buffer) - 5:
        code = buffer[at + 1]
        if code == exception:
            end = at + 5
            if crc16(buffer[at : end - 2]) == buffer[end - 2 : end]:
                return buffer[at + 2], end
        elif code == function and buffer[at + 2] == 2 * count and len(buffer) >= at + size:
            end = at + size
            if crc16(buffer[at : end - 2]) == buffer[end - 2 : end]:
                return list(struct.unpack_from(f">{count}H", buffer, at + 3)), end
        at = buffer.find(device_id, at + 1)
    return None


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
        client_factory: ClientFactory = ModbusSerialClient,
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
        """The registers of `block` from `device_id`; raises one of this module's errors.
        Each attempt waits up to `timeout_s` for the answer."""
        if not self.open():
            raise PortUnavailable(self.problem or f"serial port {self.port} is not available")
        client = self._client
        assert client is not None
        request = read_request(device_id, block.function, block.start, block.count)
        for _ in range(retries + 1):
            try:
                answer = self._transact(client, request, block, device_id, timeout_s)
            except OSError as exc:  # the adapter failed or is gone
                self.close()
                self._note_available(False, f"serial port {self.port}: {exc}")
                raise PortUnavailable(f"serial port {self.port}: {exc}") from exc
            if isinstance(answer, int):
                raise ModbusExceptionResponse(device_id, answer)
            if answer is not None:
                return answer
        raise NoResponse(f"device {device_id}: no valid response in {timeout_s:.3g} s")

    @staticmethod
    def _transact(
        client: ModbusSerialClient, request: bytes, block: Block, device_id: int, timeout_s: float
    ) -> list[int] | int | None:
        """Send `request` and wait in select() (no polling) until its answer is whole: the
        registers, an exception code, or None when the timeout ends first (silence, only noise
        or CRC-broken frames). Bytes left on the line from before are dropped first. OSError:
        the port failed (end of file: the adapter is gone)."""
        port = client.socket
        if port is None:
            raise OSError(errno.ENODEV, "closed")
        fd = port.fileno()
        with contextlib.suppress(BlockingIOError):  # pyserial opened it non-blocking
            while os.read(fd, 4096):
                pass  # a late answer or noise from before this request
        deadline = time.monotonic() + timeout_s
        os.write(fd, request)
        received = b""
        while (remaining := deadline - time.monotonic()) > 0:
            readable, _, _ = select.select([fd], [], [], remaining)
            if not readable:
                break
            try:
                data = os.read(fd, 4096)
            except BlockingIOError:
                continue  # woken without data: wait on until the deadline
            if not data:
                raise OSError(errno.ENODEV, "end of file (the adapter is gone)")
            received += data
            found = find_response(received, device_id, block.function, block.count)
            if found is not None:
                return found[0]
        return None

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
