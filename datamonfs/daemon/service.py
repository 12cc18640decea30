"""Running the daemon as a process: its lock, socket, log, and start in the background.

`run` is the daemon itself (foreground). `start_background` starts it detached
and waits until it serves, or reports why it could not (for instance another
daemon already holds the socket's lock: exactly one of two racing starts wins).
The daemon tells which on its ready descriptor, one line: `ok PID`, or
`error EXIT_STATUS CODE MESSAGE` with the error's code (docs/PROTOCOL.md).
"""

from __future__ import annotations

import grp
import logging
import os
import select
import subprocess
import sys
import time

import trio

from ..errors import ConfigError, DatamonError, StoreUnavailable
from .lock import DaemonLock
from .node import DEFAULT_SOCKET, SOCKET_MODE, Node, setup_environment
from .paths import DaemonPaths, make_private_dir, paths_for, short_address

log = logging.getLogger("datamonfs.daemon")

START_TIMEOUT = 30.0


class AlreadyRunning(DatamonError):
    code = "already_running"


def group_id(name: str | None) -> int | None:
    if not name:
        return None
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        try:
            return grp.getgrgid(int(name)).gr_gid
        except (KeyError, ValueError):
            raise ConfigError(f"no group named {name!r}") from None


WORKER_LOG = "DATAMONFS_WORKER_LOG"  # internal: set by the daemon for its workers
LOG_BYTES, LOG_KEEP = 10 << 20, 3  # daemon.log rotates at 10 MiB; .1 .. .3 are kept


def _setup_logging(paths: DaemonPaths, foreground: bool) -> int:
    """Log to the log file, rotated at LOG_BYTES (and to stderr in the foreground);
    returns a descriptor of the log file for what workers print outside logging (a
    crash's traceback). Workers log through their own handler that follows rotation."""
    from logging.handlers import RotatingFileHandler

    os.makedirs(paths.state, mode=0o700, exist_ok=True)
    fmt = logging.Formatter(f"%(asctime)s daemon[{os.getpid()}] %(levelname)s %(message)s")
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    handlers: list[logging.Handler] = [
        RotatingFileHandler(paths.log, maxBytes=LOG_BYTES, backupCount=LOG_KEEP)]
    if foreground:
        handlers.append(logging.StreamHandler(sys.stderr))
    for h in handlers:
        h.setFormatter(fmt)
        root.addHandler(h)
    return os.open(paths.log, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)


def _listen(paths: DaemonPaths, group: int | None, node: bool = False):
    import socket

    make_private_dir(os.path.dirname(paths.socket))
    if node:  # pods reach the socket's directory (a hostPath) as any uid
        os.chmod(os.path.dirname(paths.socket), 0o755)
    try:
        os.unlink(paths.socket)  # left by a daemon that died: we hold the lock now
    except FileNotFoundError:
        pass
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)  # never, not even for an instant, a socket others can open
    try:
        with short_address(paths.socket) as addr:
            sock.bind(addr)
    finally:
        os.umask(old)
    if group is not None:
        os.chown(paths.socket, -1, group)
        os.chmod(paths.socket, 0o660)
    if node:
        os.chmod(paths.socket, SOCKET_MODE)
    sock.listen(64)
    return sock


def run(socket_path: str | None, group_name: str | None = None, foreground: bool = True,
        ready_fd: int | None = None, node_root: str | None = None) -> int:
    """Serve until SIGTERM/SIGINT or a shutdown request. Returns the exit status.
    With `node_root`, in node mode (node.py): everything under that root, for pods."""
    from .supervisor import Supervisor

    def report(text: str) -> None:
        nonlocal ready_fd
        if ready_fd is not None:
            os.write(ready_fd, (text + "\n").encode())
            os.close(ready_fd)
            ready_fd = None

    node = None
    try:
        if node_root is not None:
            setup_environment(node_root)  # before paths_for: the state lives under the root
            socket_path = socket_path or DEFAULT_SOCKET
        paths = paths_for(socket_path)
        group = group_id(group_name or os.environ.get("DATAMONFS_SOCKET_GROUP"))
        make_private_dir(os.path.dirname(paths.socket))
        lock = DaemonLock(paths.lock)
        if not lock.try_acquire():
            raise AlreadyRunning(f"a datamonfs daemon is already running (pid "
                                 f"{lock.holder_pid()}) on {paths.socket}")
        if node_root is not None:
            try:
                node = Node.open(node_root)
            except BaseException:
                lock.release()
                raise
    except OSError as e:  # node mode: the mounts directory could not be shared
        report(f"error 1 config {e}")
        print(f"datamonfs: error: {e}", file=sys.stderr)
        return 1
    except DatamonError as e:
        report(f"error {e.exit_code} {e.code} {e}")
        print(f"datamonfs: error: {e}", file=sys.stderr)  # in the background: to the log
        return e.exit_code
    os.chdir("/")  # never keep a directory (a mountpoint, say) busy
    log_fd = _setup_logging(paths, foreground)
    os.environ[WORKER_LOG] = paths.log  # workers log there themselves, following rotation
    try:
        sock = _listen(paths, group, node is not None)
        listener = trio.SocketListener(trio.socket.from_stdlib_socket(sock))
        supervisor = Supervisor(paths, group, log_fd, node)
        trio.run(supervisor.serve, listener, lambda: report(f"ok {os.getpid()}"))
        return 0
    except BaseException as e:
        log.exception("daemon failed")
        report(f"error 1 internal the daemon failed: {e}; see {paths.log}")
        raise
    finally:
        try:
            os.unlink(paths.socket)
        except OSError:
            pass
        lock.release()


def start_background(socket_path: str | None, group_name: str | None = None,
                     node_root: str | None = None) -> int:
    """Start a detached daemon; its pid once it serves. AlreadyRunning when another holds the socket."""
    if node_root is not None:
        node_root = os.path.abspath(node_root)
        setup_environment(node_root)  # this process learns where the log is; the daemon too
        socket_path = socket_path or DEFAULT_SOCKET
    paths = paths_for(socket_path)
    os.makedirs(paths.state, mode=0o700, exist_ok=True)
    env = dict(os.environ)
    for var in ("DATAMONFS_STORE", "DATAMONFS_CONFIG"):  # the daemon runs in /
        value = env.get(var)
        if value and "://" not in value and not os.path.isabs(value):
            env[var] = os.path.abspath(value)
    args = [sys.executable, "-m", "datamonfs.daemon", "--socket", paths.socket]
    if group_name:
        args += ["--group", group_name]
    if node_root is not None:
        args += ["--node", "--root", node_root]
    r, w = os.pipe()
    with open(paths.log, "ab") as logf:
        proc = subprocess.Popen(args + ["--ready-fd", str(w)], pass_fds=(w,), env=env,
                                stdin=subprocess.DEVNULL, stdout=logf, stderr=logf,
                                start_new_session=True, cwd="/")
    os.close(w)
    try:
        text = _read_all(r, START_TIMEOUT)
    finally:
        os.close(r)
    if text.startswith(("ok ", "error ")):
        return reported_pid(text)
    if proc.poll() is None:
        proc.kill()
    raise StoreUnavailable(f"the datamonfs daemon did not start; see {paths.log}")


def reported_pid(text: str) -> int:
    """The pid in the daemon's `ok PID`, or the error its `error EXIT_STATUS CODE MESSAGE`
    stands for (AlreadyRunning by its code)."""
    if text.startswith("ok "):
        return int(text.split()[1])
    _, exit_code, code, message = text.split(" ", 3)
    err = (AlreadyRunning if code == AlreadyRunning.code else DatamonError)(message.strip())
    err.exit_code, err.code = int(exit_code), code
    raise err


def _read_all(fd: int, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    data = b""
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], max(deadline - time.monotonic(), 0))
        if not ready:
            break
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        data += chunk
    return data.decode(errors="replace")
