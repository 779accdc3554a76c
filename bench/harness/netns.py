"""Machines of their own for replicas: Linux network namespaces joined to this host by a veth pair.

A replica started in a namespace has its own loopback and one address; it reaches this host (and what
the host forwards to it: PostgreSQL, the S3 server) only over TCP to the host's end of its pair, as a
separate machine would. Needs root (``ip netns``); elsewhere :func:`isolated` gives loopback instead.
"""
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass(frozen=True)
class Place:
    """Where a replica runs: the command prefix that enters it, its own address, and the host's address
    as seen from it."""

    prefix: tuple[str, ...]
    address: str
    host_address: str


LOOPBACK = Place((), "127.0.0.1", "127.0.0.1")


def can_make_namespaces() -> bool:
    """True as root with ``ip`` installed."""
    return os.geteuid() == 0 and subprocess.run(["ip", "netns", "list"], capture_output=True).returncode == 0


def _ip(*args: str, namespace: str | None = None) -> None:
    command = ["ip", "netns", "exec", namespace, "ip", *args] if namespace else ["ip", *args]
    subprocess.run(command, check=True, capture_output=True)


@contextmanager
def namespace(index: int) -> Iterator[Place]:
    """A namespace with a veth pair to this host on a /30 of its own; removed on the way out."""
    tag = f"{os.getpid() % 100000}x{index}"
    name, host_end, inner_end = f"mr{tag}", f"mrh{tag}", f"mrn{tag}"
    octet2, octet3 = 200 + os.getpid() % 50, index
    host_address, address = f"10.{octet2}.{octet3}.1", f"10.{octet2}.{octet3}.2"
    subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True)
    try:
        _ip("link", "add", host_end, "type", "veth", "peer", "name", inner_end, "netns", name)
        _ip("addr", "add", f"{host_address}/30", "dev", host_end)
        _ip("link", "set", host_end, "up")
        _ip("addr", "add", f"{address}/30", "dev", inner_end, namespace=name)
        _ip("link", "set", inner_end, "up", namespace=name)
        _ip("link", "set", "lo", "up", namespace=name)
        yield Place(("ip", "netns", "exec", name), address, host_address)
    finally:
        subprocess.run(["ip", "netns", "delete", name], capture_output=True)  # takes its veth pair along
        subprocess.run(["ip", "link", "delete", host_end], capture_output=True)


@contextmanager
def isolated(index: int) -> Iterator[Place]:
    """A namespace where this process may make one, else this host's loopback."""
    if can_make_namespaces():
        with namespace(index) as place:
            yield place
    else:
        yield LOOPBACK
