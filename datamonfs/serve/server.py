"""Running the application: Hypercorn on trio, the event loop the daemon uses too.

`serve` blocks until SIGINT or SIGTERM, then stops taking connections and lets the
requests under way finish (at most GRACE seconds).
"""

from __future__ import annotations

import ipaddress
import logging
import signal

import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve as hypercorn_serve

from ..errors import ConfigError

GRACE = 5.0
log = logging.getLogger("datamonfs.serve")


def parse_bind(text: str) -> tuple[str, int]:
    """HOST:PORT, [IPV6]:PORT; the host an address or a name."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"--bind {text!r}: use HOST:PORT, e.g. 127.0.0.1:8080 or [::1]:8080")
    return host, int(port)


def is_loopback(host: str) -> bool:
    """Only an address in 127.0.0.0/8 or ::1, or `localhost`, counts: a name could resolve
    to anything."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def serve(app, bind: str, ready=None) -> None:
    """Serve `app` on `bind` until a signal. `ready(url)` is called once listening."""
    host, port = parse_bind(bind)
    config = HypercornConfig()
    config.bind = [f"{host}:{port}"]
    config.accesslog = None  # requests are not logged: a URL is the user's business
    config.errorlog = log
    config.graceful_timeout = GRACE
    config.keep_alive_timeout = 30
    trio.run(_run, app, config, ready)


async def _run(app, config: HypercornConfig, ready) -> None:
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_signals, stop)
        binds = await nursery.start(_serve, app, config, stop.wait)
        if ready is not None:
            ready(binds[0])
        await stop.wait()
        nursery.cancel_scope.deadline = trio.current_time() + GRACE + 1
    log.info("stopped")


async def _serve(app, config, shutdown_trigger, task_status=trio.TASK_STATUS_IGNORED):
    await hypercorn_serve(app, config, shutdown_trigger=shutdown_trigger, task_status=task_status)


async def _signals(stop: trio.Event) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for _ in signals:
            stop.set()
            return
