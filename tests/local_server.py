"""A free port on 127.0.0.1 for a server a test starts, and waiting until it answers."""

import socket
import time
import urllib.request


def free_port() -> int:
    """A port nothing listens on now (bound, then closed again)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until_served(url: str, seconds: float) -> None:
    """Return once ``url`` answers; fail the test after ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return
        except OSError:
            assert time.monotonic() < deadline, f"nothing served at {url}"
            time.sleep(0.5)
