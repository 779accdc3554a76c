"""Images for the container tests, built before a module's first test: a missing podman fails it with one line."""
from collections.abc import Callable

import pytest

from bench.harness import containers


def built_or_fail(build: Callable[[], dict[str, float]]) -> None:
    """Run ``build`` (it names the images it made and the seconds each took, 0 for one reused) and print
    them; without podman or debootstrap, fail the test with the line that says what to install."""
    try:
        containers.require_podman()
        built = build()
    except containers.PodmanMissing as missing:
        pytest.fail(str(missing), pytrace=False)
    print("\nimages:", ", ".join(f"{name} {f'{seconds:.0f} s' if seconds else 'reused'}" for name, seconds in built.items()))
