"""Shared bench plumbing: free ports, started-and-always-stopped servers, memory, machine info."""

import contextlib
import json
import os
import resource
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "bench" / ".cache"
LOGS = CACHE / "logs"
RESULTS = CACHE / "results"
PYTHON = str(ROOT / ".venv" / "bin" / "python")
HOST = "127.0.0.1"


def outcome_embeddings(rows: list) -> tuple:
    """Return, per outcome row (routing.evaluation.Outcome), its embedding `(n, d)` and
    {layer: `(n, d)`} pooled states of the gateway's layers (routing.learned.LAYERS), from the cache
    eval_router fills (bench/.cache/). The layers are empty when the embedder lacks any of them:
    the gateway then predicts from the final embedding only. Needs django.setup()."""
    from routing.learned import LAYERS
    from routing.management.commands.eval_router import _embeddings

    prompts = sorted({o.prompt for o in rows})
    vectors, layers = _embeddings(prompts, CACHE)
    wanted = tuple(LAYERS)
    if not set(wanted) <= set(layers):
        wanted = ()
    row_of = {p: i for i, p in enumerate(prompts)}
    at = [row_of[o.prompt] for o in rows]
    return vectors[at], {x: layers[x][at] for x in wanted}


def free_port() -> int:
    """Return a free ephemeral TCP port on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def raise_open_files_limit(wanted: int = 65536) -> None:
    """Raise this process's (and so its children's) open-file limit for many connections."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = min(wanted, hard) if hard != resource.RLIM_INFINITY else wanted
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def wait_http(url: str, *, timeout: float = 120.0, proc: subprocess.Popen | None = None,
              headers: dict[str, str] | None = None) -> None:
    """Wait until `url` answers any HTTP status (raise if `proc` dies or time runs out)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before {url} answered")
        try:
            request = urllib.request.Request(url, headers=headers or {})
            urllib.request.urlopen(request, timeout=2).read()
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer within {timeout:.0f}s")


@contextlib.contextmanager
def server(name: str, argv: list[str], *, env: dict[str, str | None] | None = None,
           ready_url: str | None = None, ready_headers: dict[str, str] | None = None,
           ready_timeout: float = 180.0) -> Iterator[subprocess.Popen]:
    """Start `argv` in its own process group, wait for `ready_url`; always stop the whole group.

    `env` overrides the inherited environment; a value of None removes that variable.
    """
    LOGS.mkdir(parents=True, exist_ok=True)
    log = open(LOGS / f"{name}.log", "ab")  # noqa: SIM115 (closed in finally)
    log.write(f"\n=== {datetime.now(UTC):%Y-%m-%d %H:%M:%S} {' '.join(argv)}\n".encode())
    log.flush()
    merged = {**os.environ, **(env or {})}
    proc = subprocess.Popen(argv, cwd=ROOT, env={k: v for k, v in merged.items() if v is not None},
                            stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        if ready_url:
            wait_http(ready_url, timeout=ready_timeout, proc=proc, headers=ready_headers)
        yield proc
    finally:
        stop_group(proc)
        log.close()


def stop_group(proc: subprocess.Popen, *, grace: float = 10.0) -> None:
    """Stop `proc`'s process group: SIGTERM, then SIGKILL after `grace` seconds."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
    # Workers may outlive a parent that exited first: clear the group either way.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                stat = handle.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        tree.setdefault(ppid, []).append(int(entry))
    return tree


def _tree(pid: int):
    """Yield `pid` and the pids of all its live descendants."""
    tree = _children()
    stack = [pid]
    while stack:
        current = stack.pop()
        stack.extend(tree.get(current, []))
        yield current


def tree_rss_mb(pid: int) -> float:
    """Return the resident memory (MB) of `pid` and all its descendants."""
    total = 0
    for current in _tree(pid):
        try:
            with open(f"/proc/{current}/status") as handle:
                for line in handle:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
                        break
        except OSError:
            continue
    return total / 1024


_TICKS = os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(pid: int) -> float:
    """Return CPU time (user + system, seconds) used so far by `pid` and its live descendants."""
    total = 0.0
    for current in _tree(pid):
        try:
            with open(f"/proc/{current}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / _TICKS  # utime, stime
    return total


def wait_idle(pid: int, *, busy_share: float = 0.1, window: float = 0.5,
              max_wait: float = 20.0) -> float:
    """Wait until `pid`'s tree uses under `busy_share` of a core (requests still queued from
    the previous cell would slow the next one); return the seconds waited."""
    started = time.monotonic()
    while time.monotonic() - started < max_wait:
        before = tree_cpu_seconds(pid)
        time.sleep(window)
        if tree_cpu_seconds(pid) - before < busy_share * window:
            break
    return time.monotonic() - started


@dataclass
class MemorySampler:
    """Sample a process tree's RSS every `interval` seconds in a background thread."""

    pid: int
    interval: float = 0.25
    samples: list[tuple[float, float]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> "MemorySampler":
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join()

    def _run(self) -> None:
        started = time.monotonic()
        while not self._stop.is_set():
            self.samples.append((time.monotonic() - started, tree_rss_mb(self.pid)))
            self._stop.wait(self.interval)

    @property
    def peak_mb(self) -> float:
        return max((mb for _, mb in self.samples), default=0.0)


def machine_info() -> dict:
    """Return when and where the numbers were taken (UTC time, load, cores, kernel)."""
    load = os.getloadavg()
    return {"utc": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "load": f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}",
            "cores": os.cpu_count(), "python": sys.version.split()[0],
            "kernel": os.uname().release}


def save_result(name: str, data: dict) -> Path:
    """Write `data` as JSON under bench/.cache/results/ (latest and timestamped); return path."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    data.setdefault("command", ".venv/bin/python " + shlex.join(sys.orig_argv[1:]))
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    path = RESULTS / f"{name}-{stamp}.json"
    text = json.dumps(data, indent=2, default=str)
    path.write_text(text)
    (RESULTS / f"{name}-latest.json").write_text(text)
    return path


def markdown_table(headers: list[str], rows: list[list[object]]) -> str:
    """Return a GitHub-flavoured markdown table."""
    lines = ["| " + " | ".join(headers) + " |",
             "|" + "|".join("---:" if i else "---" for i in range(len(headers))) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)
