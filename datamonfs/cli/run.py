"""datamonfs run: a command with its input bundles mounted and its outputs committed.

    datamonfs run --input REPO:REF=PATH ... --output REPO:BRANCH=PATH ... [-m MESSAGE]
                  [--label L] [--on-failure discard|keep] -- CMD ARGS...

Inputs are mounted read-only and outputs writable (each on its branch's head, or empty
for a branch that does not exist yet), through whichever daemon DATAMONFS_SOCKET names:
the user's own (started when none runs; mounts at PATH), or, in a pod, the node's
(mounts in the pod's directory; PATH becomes a symlink to it). CMD runs with them in
place. When it exits 0, each output is committed as a bundle that records the command
line and the input bundles (`bundle get` shows them); otherwise what it wrote is
discarded, or kept staged with --on-failure keep. Everything is unmounted, and `run`
exits with CMD's status (128 + N when a signal N ended it).

SIGTERM and SIGINT sent to `run` are passed on to CMD (a terminal's Ctrl-C reaches CMD
by itself, so it is not sent twice). After such a signal what the outputs staged is
kept, whatever --on-failure says, unless CMD still exits 0: an interrupted job loses
nothing it wrote.
"""

from __future__ import annotations

import os
import secrets
import shlex
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass, field

import click

from ..core import rules
from ..core.names import check_name, parse_branch_ref, parse_ref
from ..daemon.client import Client, ensure_daemon
from ..daemon.limits import COMMIT_TIMEOUT
from ..errors import DatamonError
from .common import info, load_config, socket_option
from .pod import PodContext, pod_from_env

_SI_KERNEL = 0x80  # si_code of a signal the kernel sent, such as a terminal's Ctrl-C


@dataclass
class Placed:
    """One mount of the run: the request fields that name it, and where CMD finds it."""

    spec: str  # as given: REPO:REF=PATH
    ref: str
    path: str
    writable: bool
    target: dict = field(default_factory=dict)
    record: dict = field(default_factory=dict)
    made: list[tuple[str, str]] = field(default_factory=list)  # (what, path) to undo


def _spec(text: str, writable: bool) -> Placed:
    ref, sep, path = text.partition("=")
    if not sep or not path:
        raise click.UsageError(f"{text!r}: write {'REPO:BRANCH' if writable else 'REPO:REF'}=PATH")
    try:
        if writable:
            repo, branch = parse_branch_ref(ref)
            ref = f"{repo}:{branch}"
        else:
            parse_ref(ref)
    except DatamonError as e:
        raise click.UsageError(str(e)) from None
    return Placed(text, ref, os.path.abspath(path), writable)


@click.command("run", short_help="Run a command on mounted inputs; commit its outputs.",
               context_settings={"allow_interspersed_args": False})
@click.option("--input", "inputs", multiple=True, metavar="REPO:REF=PATH",
              help="Mount bundle REPO:REF read-only at PATH (repeatable).")
@click.option("--output", "outputs", multiple=True, metavar="REPO:BRANCH=PATH",
              help="Mount branch REPO:BRANCH writable at PATH; committed when CMD succeeds "
                   "(repeatable).")
@click.option("-m", "--message", default=None, help="The output bundles' message "
                                                    "(default: the command line).")
@click.option("--label", default=None, metavar="L", help="Also set label L on each output bundle.")
@click.option("--on-failure", type=click.Choice(["discard", "keep"]), default="discard",
              show_default=True, help="What to do with the outputs when CMD fails.")
@socket_option
@click.argument("command", nargs=-1, required=True, metavar="-- CMD [ARGS]...")
def run(inputs: tuple[str, ...], outputs: tuple[str, ...], message: str | None,
        label: str | None, on_failure: str, socket_path: str | None,
        command: tuple[str, ...]) -> None:
    """Run CMD with bundles mounted as its inputs and branches as its outputs, commit the
    outputs when it exits 0, and exit with its status."""
    placed = [_spec(s, False) for s in inputs] + [_spec(s, True) for s in outputs]
    paths = [p.path for p in placed]
    if len(set(paths)) != len(paths):
        raise click.UsageError("two mounts at one PATH")
    if label is not None:
        check_name(label, "label name")
    host = socket.gethostname()
    problem = rules.process_problem(list(command), host)
    if problem:
        raise click.UsageError(f"the command cannot be recorded in a bundle: {problem}")
    ctx = pod_from_env()
    author = (ctx.author() if ctx else
              {"author": vars(load_config().author)} if outputs else {})
    if ctx is not None:
        client = Client(socket_path).connect()  # a pod never starts a daemon of its own
    else:
        client, started = ensure_daemon(socket_path)
        if started:
            info(f"started the datamonfs daemon (pid {started}); log: {client.paths.log}")
    job = Job(client, ctx, placed)
    ran = False
    with client:
        try:
            job.mount_all()
            ran = True
            status, interrupted = _run_command(list(command))
            if status == 0:
                job.commit_all(message or f"datamonfs run: {shlex.join(command)}"[:1000], label,
                               {"command": list(command), "host": host}, author)
                job.unmount_all("commit")
            else:
                kept = "keep" if interrupted or on_failure == "keep" else "discard"
                job.unmount_all(kept)
                if kept == "keep" and outputs:
                    info("the outputs' staged changes are kept; mount the same branch at the same "
                         "path again to see them, then commit or discard")
        finally:  # after an error: nothing was written before CMD ran; lose nothing after
            job.unmount_all("keep" if ran else "discard")
    sys.exit(status)


class Job:
    def __init__(self, client: Client, ctx: PodContext | None, placed: list[Placed]):
        self.client = client
        self.ctx = ctx
        self.placed = placed
        self.tag = secrets.token_hex(4)  # names of this run's mounts in the pod's directory
        # the store every request is about: ours, or in a pod the node's (pods name none)
        self.store = {} if ctx else {"store": load_config().store_spec().to_json()}

    def mount_all(self) -> None:
        for i, p in enumerate(self.placed):
            fields = {"rw": True, "create": True} if p.writable else {}
            if self.ctx is None:
                p.made = _prepare_dir(p.path)
                p.target = {"mountpoint": p.path}
            else:
                p.target = self.ctx.target(f"run-{self.tag}-{'out' if p.writable else 'in'}{i}")
            p.record = self.client.call("mount", timeout=300, ref=p.ref, **p.target,
                                        **fields, **self.store)["mount"]
            if self.ctx is not None:
                p.made = _link(self.ctx.path(p.record), p.path)
            info(f"{'output' if p.writable else 'input'} {p.ref} (bundle "
                 f"{p.record['bundle'][:12] or 'none'}) at {p.path}")

    def commit_all(self, message: str, label: str | None, process: dict, author: dict) -> None:
        made_from = [{"repo": p.record["repo"], "bundle": p.record["bundle"]}
                     for p in self.placed if not p.writable]
        for p in self.placed:
            if p.writable:
                r = self.client.call("commit", timeout=COMMIT_TIMEOUT, **p.target,
                                     message=message, label=label, process=process,
                                     **({"inputs": made_from} if made_from else {}), **author,
                                     **self.store)
                info(f"{p.ref}: " + (f"committed bundle {r['bundle']}" if r["bundle"] else
                                     "nothing changed, no bundle"))

    def unmount_all(self, outputs: str) -> None:
        """Unmount what is mounted; outputs "commit" (already committed: refuse if more was
        staged since), "discard" or "keep" what they staged."""
        fields = {"commit": {"commit": False}, "discard": {"discard": True},
                  "keep": {"keep": True}}[outputs]
        for p in reversed(self.placed):
            if not p.record:
                _undo(p.made)
                continue
            try:
                self.client.call("unmount", timeout=COMMIT_TIMEOUT, force=True, **p.target,
                                 **(fields if p.writable else {}), **self.store)
            except DatamonError as e:
                info(f"could not unmount {p.path}: {e}")
                continue
            finally:
                _undo(p.made)
            p.record = {}


def _prepare_dir(path: str) -> list[tuple[str, str]]:
    """A local mount's directory: created when missing (and removed afterwards)."""
    made = []
    missing = path
    while not os.path.lexists(missing):
        made.append(("rmdir", missing))
        missing = os.path.dirname(missing)
    os.makedirs(path, exist_ok=True)
    return made


def _link(target: str, path: str) -> list[tuple[str, str]]:
    """In a pod: PATH becomes a symlink to the mount (an empty directory there is replaced,
    and put back afterwards)."""
    made = _prepare_dir(os.path.dirname(path))
    if os.path.isdir(path) and not os.path.islink(path) and not os.listdir(path):
        os.rmdir(path)
        made.insert(0, ("mkdir", path))
    try:
        os.symlink(target, path)
    except FileExistsError:
        raise click.UsageError(f"{path} exists; give a PATH that does not (or an empty "
                               "directory)") from None
    return [("unlink", path), *made]


def _undo(made: list[tuple[str, str]]) -> None:
    """Put PATH back as run found it, deepest first."""
    for what, path in made:
        try:
            getattr(os, what)(path)
        except OSError:
            pass
    made.clear()


def _run_command(argv: list[str]) -> tuple[int, bool]:
    """Run CMD, passing SIGTERM and SIGINT on; (its exit status, whether a signal came)."""
    passed = {signal.SIGTERM, signal.SIGINT}
    old = signal.pthread_sigmask(signal.SIG_BLOCK, passed | {signal.SIGCHLD})
    interrupted = False
    try:
        try:
            proc = subprocess.Popen(argv, preexec_fn=lambda: signal.pthread_sigmask(
                signal.SIG_SETMASK, old))
        except OSError as e:
            info(f"cannot run {argv[0]}: {e.strerror}")
            return 127, False
        while proc.poll() is None:
            got = signal.sigtimedwait(passed | {signal.SIGCHLD}, 0.5)
            if got is not None and got.si_signo in passed:
                interrupted = True
                if got.si_code != _SI_KERNEL:  # a terminal's signal reached CMD already
                    proc.send_signal(got.si_signo)
        code = proc.returncode
        return (128 - code if code < 0 else code), interrupted
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
