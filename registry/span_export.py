"""Sending a process's finished spans: a bounded queue that request threads append to, and one export thread
that encodes what it holds as OTLP protobuf and sends it (or writes it to standard output).

The queue and pacing are the batch span processor's (``OTEL_BSP_MAX_QUEUE_SIZE``, ``OTEL_BSP_SCHEDULE_DELAY``,
``OTEL_BSP_MAX_EXPORT_BATCH_SIZE``, with its defaults): a span that finds the queue full is dropped and counted,
never waited for; the thread sends every ``OTEL_BSP_SCHEDULE_DELAY`` ms, or as soon as a batch is full.
The protobuf is written here directly (:class:`OtlpEncoder`, the fields of ``ExportTraceServiceRequest``
this service fills), because the generated messages cost several µs a span, which on a 0.3 ms prediction
is what the goal allows for all of tracing; a span's name and attributes are kept encoded once made, since
a route's repeat, and each span's own fields (ids, times, state, status) are written by compiled code
(``registry/native/span_encoding.c``), where the same loop in Python cost more instructions than all the rest
of a traced request's export. The sending is :mod:`registry.otlp_http`'s.
"""
from __future__ import annotations

import json
import logging
import struct
import sys
import threading
from collections import deque
from collections.abc import Callable, Mapping, Sequence

try:
    from registry.span_encoding import encode_request
except ImportError as exc:  # a checkout whose compiled parts were not built
    raise ImportError(f"registry.span_encoding is not built ({exc}): `pip install -e .` (or `make`) builds it "
                      "(it needs a C compiler, cc)") from exc

log = logging.getLogger(__name__)

DEFAULTS = {"OTEL_BSP_MAX_QUEUE_SIZE": 2048, "OTEL_BSP_SCHEDULE_DELAY": 5000, "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": 512}
_HAS_IS_REMOTE, _IS_REMOTE = 0x100, 0x200  # Span.flags: whether the parent's remoteness is known, and is it
_CACHED_BLOCKS = 4096  # encoded names and attributes kept (a route's steps, each model's requests)


# A finished span as the recorder queues it: a plain tuple of plain values, in this order, its attributes as a tuple
# of names and one of values (strings, booleans, integers, floats). The cycle collector stops tracking such a tuple
# within its passes of the two younger generations (it never would with a dict in it), so that spans waiting for
# their send never reach the oldest, whose collections then scanned them again and again: queued as objects, they
# made a traced worker collect 7 times as often, with pauses of up to 57 ms (docs/operations.md, "Traces").
FIELDS = ("name", "trace_id", "span_id", "parent_id", "remote", "kind", "state", "start", "end", "names", "values",
          "error")
Ended = tuple  # str, int, int, int (0: a root), bool, int (SpanKind), str, int, int (ns), tuple, tuple, str | None


def pacing(environ: Mapping[str, str]) -> dict[str, int]:
    """The queue's size, the delay between sends (ms) and a batch's size, read as the SDK reads them;
    ValueError naming the variable that is not a positive whole number."""
    found = {}
    for name, default in DEFAULTS.items():
        value = environ.get(name, "").strip()
        try:
            found[name] = int(value) if value else default
        except ValueError:
            found[name] = 0
        if found[name] <= 0:
            raise ValueError(f"{name}={value}: a positive whole number is needed")
    if found["OTEL_BSP_MAX_EXPORT_BATCH_SIZE"] > found["OTEL_BSP_MAX_QUEUE_SIZE"]:
        raise ValueError("OTEL_BSP_MAX_EXPORT_BATCH_SIZE must not exceed OTEL_BSP_MAX_QUEUE_SIZE")
    return found


class Recorder:
    """The bounded queue of finished spans and the thread that sends them to each sink (a callable taking a batch)."""

    def __init__(self, sinks: Sequence[Callable[[list], None]], *, queue_size: int, delay_ms: int, batch_size: int,
                 closers: Sequence[Callable[[], None]] = ()):
        self._sinks, self._closers = tuple(sinks), tuple(closers)
        self._queue: deque = deque()
        self._queue_size, self._batch_size, self._delay = queue_size, batch_size, delay_ms / 1000
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._waiters: list[threading.Event] = []
        self._stopping = False
        self.dropped = 0
        self._thread = threading.Thread(target=self._run, name="span-export", daemon=True)
        self._thread.start()

    def add(self, span: Ended, children: Sequence[Ended] = ()) -> None:
        """Queue a finished span (and its ``children``, ended before it) for the next send; dropped together (and
        counted) when the queue has no room for all of them."""
        queue = self._queue
        held, count = len(queue), 1 + len(children)
        if held + count > self._queue_size:
            with self._lock:
                self.dropped += count
            return
        queue.append(span)
        if children:
            queue.extend(children)
        if held < self._batch_size <= held + count:
            self._wake.set()

    def flush(self, timeout: float = 30.0) -> bool:
        """Send every span queued before the call; whether that was done within ``timeout`` seconds."""
        done = threading.Event()
        with self._lock:
            self._waiters.append(done)
        self._wake.set()
        return done.wait(timeout)

    def stop(self, timeout: float = 5.0) -> None:
        """Send what is queued (within ``timeout`` seconds), then end the thread and close the sinks (closers may
        run twice: at once when the sends outlast ``timeout``, which cuts short a collector's retries)."""
        self._stopping = True
        if not self.flush(timeout):
            for close in self._closers:
                close()
        self._thread.join(timeout)
        for close in self._closers:
            close()

    def _run(self) -> None:
        reported = 0
        while True:
            woken = self._wake.wait(self._delay)
            self._wake.clear()
            with self._lock:
                waiters, self._waiters = self._waiters, []
            pending = len(self._queue)
            if woken and not waiters and not self._stopping:
                # woken by a full batch: whole batches only, as the SDK's processor sends them; the spans queued
                # since wait for the next (a batch and its few latecomers were two requests to the collector)
                pending -= pending % self._batch_size
            self._send(pending)
            for waiter in waiters:
                waiter.set()
            if self.dropped != reported:  # once per send at most, however many were dropped
                log.warning("%d spans dropped so far: the queue was full (OTEL_BSP_MAX_QUEUE_SIZE=%d)",
                            self.dropped, self._queue_size)
                reported = self.dropped
            if self._stopping and waiters:
                return

    def _send(self, pending: int) -> None:
        """Send the first ``pending`` spans of the queue (those queued by now), a batch at a time."""
        queue = self._queue
        while pending > 0:
            batch = [queue.popleft() for _ in range(min(pending, self._batch_size))]
            pending -= len(batch)
            for sink in self._sinks:
                try:
                    sink(batch)
                except Exception:  # a sink's failure loses its batch, never the thread
                    log.exception("sending %d spans failed", len(batch))


def otlp_sink(resource: Mapping[str, object], scope: str,
              environ: Mapping[str, str]) -> tuple[Callable[[list], None], Callable[[], None]]:
    """A sink that sends a batch as one OTLP/HTTP protobuf request to the collector ``environ`` names
    (:mod:`registry.otlp_http`), and its closer; a batch the collector did not take is logged and dropped."""
    from registry.otlp_http import Sender

    sender, encoder = Sender(environ), OtlpEncoder(resource, scope)

    def send(batch: list) -> None:
        try:
            sender.send(encoder.encode(batch))
        except OSError as exc:
            log.warning("%d spans not sent: %s", len(batch), exc)

    return send, sender.stop


def console_sink(batch: list) -> None:
    """Write each span of ``batch`` to standard output as one line of JSON."""
    sys.stdout.write("".join(json.dumps(_as_json(*span), default=str) + "\n" for span in batch))
    sys.stdout.flush()


def _as_json(name: str, trace_id: int, span_id: int, parent_id: int, _remote: bool, kind: int, _state: str,
             start: int, end: int, names: tuple, values: tuple, error: str | None) -> dict:
    """A queued span (:data:`FIELDS`) as the console writes it."""
    return {"name": name, "trace_id": f"{trace_id:032x}", "span_id": f"{span_id:016x}",
            "parent_id": f"{parent_id:016x}" if parent_id else None, "kind": kind,
            "start_time_unix_nano": start, "end_time_unix_nano": end, "attributes": dict(zip(names, values)),
            "status": "ERROR" if error is not None else "UNSET", **({"error": error} if error else {})}


class OtlpEncoder:
    """Spans as the bytes of one ``ExportTraceServiceRequest`` (opentelemetry-proto's trace.proto field numbers):
    one resource, one instrumentation scope, and per span its ids, trace state, name, kind, times,
    attributes (strings, booleans, integers, floats; anything else as its ``str``), error status and flags."""

    def __init__(self, resource: Mapping[str, object], scope: str):
        self._blocks: dict[tuple, tuple[tuple, bytes]] = {}
        # ResourceSpans.resource (1) = Resource { attributes (1) };
        # ScopeSpans.scope (1) = InstrumentationScope { name (1) }
        self._resource = _field(1, b"".join(_key_value(1, key, value) for key, value in resource.items()))
        self._scope = _field(1, _field(1, scope.encode()))

    def encode(self, spans: list[Ended]) -> bytes:
        """The request's bytes for ``spans``, written by compiled code (:func:`registry.span_encoding.encode_request`)
        around the resource, the scope and the blocks this encoder keeps."""
        return encode_request(self._resource, self._scope, spans, self._blocks, self._block)

    def _block(self, key: tuple, kinds: tuple) -> tuple[tuple, bytes]:
        """What a span shares with others of its name, kind, remoteness and attributes (``key``): name (5), kind
        (6), flags (16), attributes (9); kept for the next (a route's spans repeat)."""
        if len(self._blocks) >= _CACHED_BLOCKS:
            self._blocks.clear()
        name, kind, remote, names, values = key
        encoded = b"".join((_field(5, name.encode()), b"\x30", _varint(kind), _FLAGS[remote],
                            *(_key_value(9, attribute, value) for attribute, value in zip(names, values))))
        self._blocks[key] = (kinds, encoded)
        return kinds, encoded


# flags (16), fixed32 (its tag takes two bytes): a local parent's, and a remote one's
_FLAGS = {False: b"\x85\x01" + struct.pack("<I", _HAS_IS_REMOTE),
          True: b"\x85\x01" + struct.pack("<I", _HAS_IS_REMOTE | _IS_REMOTE)}


def _key_value(number: int, key: str, value: object) -> bytes:
    """Field ``number`` holding KeyValue { key (1), value (2): AnyValue }."""
    if isinstance(value, bool):
        encoded = b"\x10" + (b"\x01" if value else b"\x00")  # bool_value (2)
    elif isinstance(value, int) and -2**63 <= value < 2**63:
        encoded = b"\x18" + _varint(value & 0xFFFFFFFFFFFFFFFF)  # int_value (3), two's complement
    elif isinstance(value, float):
        encoded = b"\x21" + struct.pack("<d", value)  # double_value (4)
    else:
        encoded = _field(1, str(value).encode())  # string_value (1)
    return _field(number, _field(1, key.encode()) + _field(2, encoded))


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited field (bytes, string or message)."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _varint(value: int) -> bytes:
    if value < 0x80:
        return bytes((value,))
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)

