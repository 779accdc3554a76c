"""A TCP proxy in front of a server that a test can cut (as a database going down) and restore, and
one that damages what clients send (as a faulty network card or middlebox would)."""
import re
import socket
import threading

from bench.harness.server import free_port


class CuttableProxy:
    """Forwards ``host``:``port`` to ``upstream``; :meth:`cut` drops every connection and refuses new
    ones (connection refused, as from a stopped server), :meth:`restore` accepts them again."""

    def __init__(self, upstream: tuple[str, int], host: str = "127.0.0.1"):
        self.upstream = upstream
        self.host = host
        self.port = free_port()
        self._listener: socket.socket | None = None
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()

    def __enter__(self) -> "CuttableProxy":
        self.restore()
        return self

    def __exit__(self, *exc) -> None:
        self.cut()

    def restore(self) -> None:
        """Listen again on the same port."""
        listener = socket.create_server((self.host, self.port))
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        """Close the listener and every forwarded connection."""
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread; close alone would not
            listener.close()
        with self._lock:
            open_sockets, self._open = self._open, set()
        for sock in open_sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut
            try:
                server = socket.create_connection(self.upstream, timeout=5)
                server.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._open.update((client, server))
            threading.Thread(target=self._pump, args=(client, server, self._outgoing()), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, None), daemon=True).start()

    def _outgoing(self):
        """What to do to each chunk a client sends: nothing here."""
        return None

    def _pump(self, source: socket.socket, target: socket.socket, change=None) -> None:
        try:
            while data := source.recv(65536):
                target.sendall(change(data) if change is not None else data)
        except OSError:
            pass
        for sock in (source, target):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


_REQUEST_LINE = re.compile(rb"(GET|PUT|POST|HEAD|DELETE) (\S+) HTTP/1\.1\r\n")


class DamagingProxy(CuttableProxy):
    """A proxy that flips one bit of the first body byte of every HTTP/1.1 PUT its clients send while
    :attr:`damaging` is set (headers are left alone, so the request still parses and signs), and keeps
    every request line it forwarded in :attr:`requests` as ``(method, path)``."""

    def __init__(self, upstream: tuple[str, int], host: str = "127.0.0.1"):
        super().__init__(upstream, host)
        self.damaging = True
        self.requests: list[tuple[str, str]] = []

    def _outgoing(self):
        state = {"phase": None}  # None, "headers" (of a PUT to damage) or "body" (its first byte is next)

        def change(data: bytes) -> bytes:
            found = list(_REQUEST_LINE.finditer(data))
            self.requests += [(match.group(1).decode(), match.group(2).decode()) for match in found]
            at = 0
            if found and found[-1].group(1) == b"PUT" and self.damaging:
                state["phase"], at = "headers", found[-1].end()
            if state["phase"] == "headers":
                end = data.find(b"\r\n\r\n", at)
                if end < 0:
                    return data
                state["phase"], at = "body", end + 4
            if state["phase"] == "body" and at < len(data):
                state["phase"] = None
                return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1:]
            return data

        return change
