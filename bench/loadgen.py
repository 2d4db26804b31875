"""Drive load with wrk (Debian's `wrk`): a generated Lua script POSTs chat bodies and reports JSON.

The Lua script sends OpenAI chat bodies (one fixed body, or a list of distinct prompts taken in
turn so no two requests of a run repeat), and, when asked, sums the gateway's `Server-Timing`
stages and counts its `X-LLMOps-Cache` statuses per thread; `done()` prints one JSON line.
"""

import json
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from bench.common import CACHE

_LUA = r"""
local bodies = {%(bodies)s}
local extra = {%(extra)s}
local nthreads = %(threads)d
local threads = {}
local counter = 0
stage_sum, stage_n, cache_status, statuses = {}, {}, {}, {}

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
%(auth)s
wrk.body = bodies[1]
-- Per-body header tables (false: the default headers), merged once at load.
for i, h in ipairs(extra) do
  if h then
    local merged = {}
    for k, v in pairs(wrk.headers) do merged[k] = v end
    for k, v in pairs(h) do merged[k] = v end
    extra[i] = merged
  end
end

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  counter = id or 0
end

%(request)s

%(response)s

local function enc(t)
  local parts = {}
  for k, v in pairs(t) do
    parts[#parts + 1] = string.format("%%q:%%s", tostring(k), tostring(v))
  end
  return "{" .. table.concat(parts, ",") .. "}"
end

local function merge(into, from)
  for k, v in pairs(from or {}) do into[k] = (into[k] or 0) + v end
end

function done(summary, latency, requests)
  local ss, sn, cs, st = {}, {}, {}, {}
  for _, t in ipairs(threads) do
    merge(ss, t:get("stage_sum")); merge(sn, t:get("stage_n"))
    merge(cs, t:get("cache_status")); merge(st, t:get("statuses"))
  end
  local e = summary.errors
  io.write(string.format(
    'BENCHJSON {"requests":%%d,"duration_us":%%d,"errors":{"connect":%%d,"read":%%d,' ..
    '"write":%%d,"status":%%d,"timeout":%%d},"p50_us":%%d,"p90_us":%%d,"p99_us":%%d,' ..
    '"mean_us":%%f,"max_us":%%d,"stage_sum":%%s,"stage_n":%%s,"cache":%%s,"statuses":%%s}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.mean,
    latency.max, enc(ss), enc(sn), enc(cs), enc(st)))
end
"""

_REQUEST_CYCLE = """
function request()
  local i = (counter % #bodies) + 1
  counter = counter + nthreads
  return wrk.format(nil, nil, extra[i] or nil, bodies[i])
end
"""

_RESPONSE_STATS = """
function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
  local timing = headers["Server-Timing"] or headers["server-timing"]
  if timing then
    stage_n["_all"] = (stage_n["_all"] or 0) + 1
    for name, dur in string.gmatch(timing, "([%w_%-]+);dur=([%d%.]+)") do
      stage_sum[name] = (stage_sum[name] or 0) + tonumber(dur)
      stage_n[name] = (stage_n[name] or 0) + 1
    end
  end
  local cache = headers["X-LLMOps-Cache"] or headers["x-llmops-cache"]
  if cache then cache_status[cache] = (cache_status[cache] or 0) + 1 end
end
"""


def chat_body(model: str, prompt: str, *, max_tokens: int = 64, stream: bool = False) -> str:
    """Return an OpenAI chat completion request body."""
    body: dict = {"model": model, "messages": [{"role": "user", "content": prompt}],
                  "max_tokens": max_tokens}
    if stream:
        body["stream"] = True
    return json.dumps(body, separators=(",", ":"), ensure_ascii=True)


def _lua_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass
class WrkResult:
    """One wrk run, in milliseconds and requests per second."""

    connections: int
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    errors: int
    error_detail: dict
    stages_ms: dict[str, float] = field(default_factory=dict)
    cache: dict[str, int] = field(default_factory=dict)
    statuses: dict[str, int] = field(default_factory=dict)


Body = str | tuple[str, dict[str, str]]


def _lua_headers(headers: dict[str, str] | None) -> str:
    if not headers:
        return "false"
    return "{" + ",".join(f"[{_lua_string(k)}]={_lua_string(v)}" for k, v in headers.items()) + "}"


def write_script(bodies: list[Body], *, threads: int, auth: str | None,
                 collect: bool) -> Path:
    """Write a wrk Lua script sending `bodies` (in turn when more than one); return its path.

    A body may come with its own extra headers: `(body, {"Cache-Control": "no-store"})`.
    """
    (CACHE / "lua").mkdir(parents=True, exist_ok=True)
    pairs = [(b, None) if isinstance(b, str) else b for b in bodies]
    text = _LUA % {
        "bodies": ",\n".join(_lua_string(b) for b, _ in pairs),
        "extra": ",".join(_lua_headers(h) for _, h in pairs),
        "threads": threads,
        "auth": f'wrk.headers["Authorization"] = {_lua_string(auth)}' if auth else "",
        "request": _REQUEST_CYCLE if len(bodies) > 1 or pairs[0][1] else "",
        "response": _RESPONSE_STATS if collect else "",
    }
    handle = tempfile.NamedTemporaryFile("w", suffix=".lua", dir=CACHE / "lua", delete=False)
    with handle:
        handle.write(text)
    return Path(handle.name)


def run_wrk(url: str, bodies: list[Body], *, connections: int, seconds: float,
            auth: str | None = None, collect: bool = False, timeout_s: int = 30) -> WrkResult:
    """Run wrk against `url` with `connections` open for `seconds`; return the parsed result."""
    wrk = shutil.which("wrk")
    if wrk is None:
        raise RuntimeError("wrk is not installed: apt-get install -y wrk")
    threads = max(1, min(connections, 2))
    script = write_script(bodies, threads=threads, auth=auth, collect=collect)
    try:
        argv = [wrk, "-t", str(threads), "-c", str(connections), "-d", f"{max(1, int(seconds))}s",
                "--timeout", f"{timeout_s}s", "-s", str(script), url]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 120,
                              check=False)
    finally:
        script.unlink(missing_ok=True)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("BENCHJSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {proc.stdout[-500:]} "
                           f"{proc.stderr[-500:]}")
    raw = json.loads(line.removeprefix("BENCHJSON "))
    duration = raw["duration_us"] / 1e6
    # Mean per timed response (a stage a request skipped counts as 0), so stages add up.
    timed = raw["stage_n"].get("_all", 0)
    stages = {name: total / timed for name, total in raw["stage_sum"].items() if timed}
    errors = sum(raw["errors"].values())
    return WrkResult(
        connections=connections, requests=raw["requests"], seconds=duration,
        rps=raw["requests"] / duration if duration else 0.0,
        p50_ms=raw["p50_us"] / 1000, p90_ms=raw["p90_us"] / 1000, p99_ms=raw["p99_us"] / 1000,
        mean_ms=raw["mean_us"] / 1000, errors=errors, error_detail=raw["errors"],
        stages_ms=stages, cache=raw["cache"], statuses=raw["statuses"],
    )
