"""Mount workers started before they are needed.

Starting Python and importing pyfuse3, trio and the store clients takes longer than
the mount itself, so the supervisor keeps one worker started and idle: a mount takes
it and starts the next one in the background, and is ready in 0.2-0.4 s.
"""

from __future__ import annotations

import logging

import trio

from .protocol import Refused
from .worker_process import WorkerProcess

log = logging.getLogger(__name__)


class SpareWorkers:
    def __init__(self, nursery: trio.Nursery, log_fd: int | None):
        self.nursery = nursery  # the supervisor's: every worker is reaped there
        self.log_fd = log_fd
        self.closed = False
        self._spare: WorkerProcess | None = None
        self._refilling = False

    async def spawn(self) -> WorkerProcess:
        worker = await WorkerProcess.spawn(self.log_fd)
        self.nursery.start_soon(worker.wait)  # reaps it whatever happens to it
        return worker

    async def refill(self) -> None:
        """Have one idle worker ready (one refill at a time)."""
        if self._refilling or self.closed:
            return
        self._refilling = True
        try:
            if self._spare is None or not self._spare.alive():
                self._spare = await self.spawn()
        except Refused as e:  # said why already (a worker that died starting, say)
            if not self.closed:
                log.error("could not start a spare worker: %s", e)
        except Exception:
            log.exception("could not start a spare worker")
        finally:
            self._refilling = False

    async def take(self) -> WorkerProcess:
        """An idle worker for a mount: the spare, else a new one."""
        spare, self._spare = self._spare, None
        self.nursery.start_soon(self.refill)
        if spare is not None and spare.alive():
            return spare
        return await self.spawn()

    async def close(self) -> None:
        self.closed = True
        if self._spare is not None:
            await self._spare.kill()
