"""8. Serving over HTTP: 64 concurrent clients reading random ranges of one file from
`datamonfs serve` (open, and behind JWT), beside nginx serving the same bytes from local
disk (the limit). wrk drives the load (2 threads, 64 connections, a random Range and, for
the JWT server, a bearer token per request); figures: throughput, requests/s, p99
latency, and the server's peak RSS under load (nginx: master plus workers)."""

from __future__ import annotations

import os
import random
import re
import select
import shutil
import signal
import subprocess
import time

from . import data
from .common import DATAMONFS, MiB, Datamonfs, scratch
from .measure import OURS, Table, Target, alternate
from .sizes import Size

SCENARIO = "8. Serve"
JWT, NGINX = "datamonfs + JWT", "nginx (local disk)"
CONNECTIONS, THREADS = 64, 2
RANGES = [("4 KiB ranges", 4 << 10), ("1 MiB ranges", 1 << 20)]
SECRET = b"bench-secret-" + b"x" * 32

LUA = """
local size, span, token = %d, %d, "%s"
math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))
request = function()
  local start = math.random(0, size - span)
  local headers = {["Range"] = "bytes=" .. start .. "-" .. (start + span - 1)}
  if token ~= "" then headers["Authorization"] = "Bearer " .. token end
  return wrk.format("GET", nil, headers)
end
"""

NGINX_CONF = """
worker_processes auto;
pid {work}/nginx.pid;
error_log {work}/nginx-error.log;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  sendfile on;
  keepalive_requests 100000;
  client_body_temp_path {work}/nginx-tmp;
  proxy_temp_path {work}/nginx-tmp;
  fastcgi_temp_path {work}/nginx-tmp;
  uwsgi_temp_path {work}/nginx-tmp;
  scgi_temp_path {work}/nginx-tmp;
  server {{ listen 127.0.0.1:{port}; root {root}; }}
}}
"""


class Server:
    """A server process and the URL of the file; `peak_rss()` its VmHWM (and children's)."""

    def __init__(self, proc: subprocess.Popen, url: str, pids):
        self.proc, self.url, self._pids = proc, url, pids

    def peak_rss_mb(self) -> float:
        total = 0
        for pid in self._pids():
            try:
                with open(f"/proc/{pid}/status") as f:
                    total += next(int(line.split()[1]) for line in f if line.startswith("VmHWM"))
            except (OSError, StopIteration):
                pass
        return total / 1024 * 1.048576

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def serve(dm: Datamonfs, *args: str) -> Server:
    proc = subprocess.Popen([DATAMONFS, "serve", "--bind", "127.0.0.1:0", *args], env=dm.env,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    ready, _, _ = select.select([proc.stdout], [], [], 60)
    if not ready:
        raise SystemExit("datamonfs serve did not start")
    url = proc.stdout.readline().decode().strip()
    return Server(proc, url + "/api/v1/repos/served/refs/v1/files/big.bin",
                  lambda: [proc.pid])


def nginx(work: str, root: str) -> Server:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    os.makedirs(os.path.join(work, "nginx-tmp"), exist_ok=True)
    conf = os.path.join(work, "nginx.conf")
    with open(conf, "w") as f:
        f.write(NGINX_CONF.format(work=work, port=port, root=root))
    proc = subprocess.Popen(["nginx", "-c", conf, "-g", "daemon off;"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1)

    def pids():
        found = [proc.pid]
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/stat") as f:
                        if int(f.read().rsplit(")", 1)[1].split()[1]) == proc.pid:
                            found.append(int(entry))
                except (OSError, ValueError, IndexError):
                    pass
        return found

    return Server(proc, f"http://127.0.0.1:{port}/big.bin", pids)


def wrk(url: str, size: int, span: int, token: str, seconds: int, work: str) -> dict:
    script = os.path.join(work, "ranges.lua")
    with open(script, "w") as f:
        f.write(LUA % (size, span, token))
    out = subprocess.run(["wrk", "-t", str(THREADS), "-c", str(CONNECTIONS), "-d", f"{seconds}s",
                          "--latency", "-s", script, url], capture_output=True, text=True,
                         timeout=seconds + 120)
    if out.returncode:
        raise SystemExit(f"wrk failed: {out.stderr[-500:]}")
    text = out.stdout
    if "Non-2xx or 3xx responses" in text:
        raise SystemExit(f"{url} answered errors under load:\n{text}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", text)
    scale = {"us": 0.001, "ms": 1, "s": 1000}[p99.group(2)]
    return {"rps": rps, "MB/s": rps * span / 1e6, "p99": float(p99.group(1)) * scale}


def run_scenario(size: Size, reps: int) -> tuple[list[Table], list, list[Target]]:
    if not shutil.which("wrk") or not shutil.which("nginx"):
        raise SystemExit("scenario 8 needs wrk and nginx (make bench installs them)")
    work = scratch("serve")
    plain = os.path.join(work, "plain")
    os.makedirs(plain)
    data.write_random(os.path.join(plain, "big.bin"), size.serve_file, random.Random(7))
    dm = Datamonfs(work)
    dm("repo", "create", "served")
    dm("bundle", "upload", "served", plain, "-m", "served", "--label", "v1")
    secret = os.path.join(work, "secret")
    with open(secret, "wb") as f:
        f.write(SECRET)
    token = dm("token", "create", "--secret-file", secret, "--scope", "read:served",
               "--ttl", "1d")
    seconds = size.serve_seconds
    servers = {OURS: serve(dm), JWT: serve(dm, "--jwt-secret-file", secret),
               NGINX: nginx(work, plain)}
    try:
        # Warm: the block cache holds the file, the page cache holds the plain copy.
        subprocess.run(["curl", "-sf", "-o", "/dev/null", servers[OURS].url], check=True)
        subprocess.run(["cat", os.path.join(plain, "big.bin")], stdout=subprocess.DEVNULL,
                       check=True)

        def contender(name: str):
            def once() -> dict[str, float]:
                out = {}
                for label, span in RANGES:
                    r = wrk(servers[name].url, size.serve_file, span,
                            token if name == JWT else "", seconds, work)
                    out[f"{label}: throughput"] = r["MB/s"]
                    out[f"{label}: requests"] = r["rps"]
                    out[f"{label}: p99 latency"] = r["p99"]
                out["server peak RSS under load"] = servers[name].peak_rss_mb()
                return out
            return once

        measured = alternate(reps, {name: contender(name) for name in servers})
    finally:
        for s in servers.values():
            s.stop()
        dm.close()
    shutil.rmtree(work)
    table = Table(SCENARIO, f"{CONNECTIONS} clients reading random ranges of a "
                  f"{size.serve_file // MiB} MiB file over HTTP", [OURS, JWT, NGINX],
                  limit=NGINX)
    units = {"throughput": ("MB/s", True), "requests": ("requests/s", True),
             "p99 latency": ("ms", False)}
    for name, samples in measured.items():
        kind = name.rsplit(": ", 1)[-1]
        unit, higher = units.get(kind, ("MB", False))
        table.figure(name, unit, higher).samples.update(samples)
    table.notes += [
        f"wrk: {THREADS} threads, {CONNECTIONS} connections, {seconds} s per figure, on the "
        "same 2 cores as the server; a random Range per request (and a bearer token for the "
        "JWT server, checked on every request).",
        "datamonfs serves from its block cache (warmed by one full read); nginx from the page "
        "cache (warmed by one read of the file), with sendfile and one worker per core.",
        "The JWT column against the datamonfs column is the cost of checking tokens.",
    ]
    big = next(f for f in table.figures if f.name == "1 MiB ranges: throughput")
    rss = next(f for f in table.figures if f.name == "server peak RSS under load")
    targets = [Target("1 MiB ranges: throughput ≥ 0.25× nginx's", "≥ 0.25×",
                      f"{big.ratio(NGINX) or 0:.2f}×", (big.ratio(NGINX) or 0) >= 0.25),
               Target("server peak RSS under 64 clients ≤ 300 MB", "≤ 300 MB",
                      f"{rss.median(OURS) or 0:,.0f} MB", (rss.median(OURS) or 1e9) <= 300)]
    return [table], [], targets
