"""Benchmark: end-to-end latency of a cache hit vs a miss through POST /v1/chat/completions.

Starts the real server (python -m llmops.serve) on 127.0.0.1 with a throw-away SQLite database,
the in-process cache store and the simulated models, creates an API key, then times
  - miss:     a new question (embedding + lookup + simulated model call + write-behind store),
  - exact:    the same question again,
  - semantic: a paraphrase of a stored question.
Bounded: --rounds requests of each kind, sequentially. Prints median and p99 in ms.

  python bench/semcache_e2e.py [--rounds 40]
"""

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=40)
    args = parser.parse_args()
    import httpx

    tmp = tempfile.mkdtemp(prefix="semcache-e2e-")
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp}/db.sqlite3", "DEBUG": "true",
           "SECRET_KEY": "bench", "REDIS_URL": "", "SEMCACHE_REDIS_URL": "",
           "ENABLE_SEMANTIC_CACHE": "true", "HF_HUB_OFFLINE": "1",
           "DJANGO_SETTINGS_MODULE": "llmops.settings.base"}
    run = lambda *a: subprocess.run([PY, "manage.py", *a], cwd=ROOT, env=env, check=True,  # noqa: E731
                                    capture_output=True, text=True).stdout
    run("migrate", "--noinput")
    run("load_default_models")
    key = json.loads(run("create_api_key", "--team", "bench", "--user", "bench", "--json"))["key"]
    port = free_port()
    server = subprocess.Popen([PY, "-m", "llmops.serve", "--host", "127.0.0.1", "--port",
                               str(port), "--workers", "1"], cwd=ROOT, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        client = httpx.Client(base_url=f"http://127.0.0.1:{port}/v1", timeout=60,
                              headers={"Authorization": f"Bearer {key}"})
        deadline = time.monotonic() + 120
        while True:
            try:
                client.get("/models")
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

        def ask(text):
            t = time.perf_counter()
            r = client.post("/chat/completions", json={
                "model": "auto", "messages": [{"role": "user", "content": text}]})
            ms = (time.perf_counter() - t) * 1000
            r.raise_for_status()
            return ms, r.headers.get("x-llmops-cache", r.headers.get("x-cache", "?"))

        ask("warm up question one")
        results = {"miss": [], "exact": [], "semantic": []}
        statuses = {"miss": set(), "exact": set(), "semantic": set()}
        for i in range(args.rounds):
            q = f"What is the best way to cook rice number {i}?"
            ms, st = ask(q)
            results["miss"].append(ms)
            statuses["miss"].add(st)
            time.sleep(0.05)  # let the write-behind store land
            ms, st = ask(q)
            results["exact"].append(ms)
            statuses["exact"].add(st)
            ms, st = ask(f"What's the best way to cook rice number {i}?")
            results["semantic"].append(ms)
            statuses["semantic"].add(st)
        print(f"{'kind':>9} {'p50 ms':>8} {'p99 ms':>8}  cache header")
        for kind, samples in results.items():
            print(f"{kind:>9} {np.median(samples):>8.1f} {np.percentile(samples, 99):>8.1f}  "
                  f"{sorted(statuses[kind])}")
    finally:
        server.terminate()
        server.wait(timeout=20)


if __name__ == "__main__":
    main()
