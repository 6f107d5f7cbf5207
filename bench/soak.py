"""Memory soak: the resident memory of a keycrew worker under ten minutes of mixed load.

    python bench/soak.py [--backend sqlite|postgresql] [--minutes 10] [--scale 1.0]
                         [--users-with-tokens 2000] [--connections 16] [--writes-per-second 10]

It fills an instance as bench/api.py does, gives --users-with-tokens users a token whose value it
knows, starts `keycrew serve` with one worker, and drives it for --minutes with wrk and a Lua
script: each request picks a random path among the everyday reads (single objects and lists of
20, with random ids) and a random credential among root's and the users' tokens, so that the
principal cache, the usage writer and the session's identity maps see many different keys. A
Python thread meanwhile creates and revokes tokens (--writes-per-second). Every 10 s it samples the
worker's RSS (/proc/<pid>/status), and reports the RSS at the start of the load, at half time and
at the end, the peak, and the growth over the second half. Issue 9's target: at most 150 MB after
ten minutes, flat over the last five. Results go to bench/results/soak-<backend>-<timestamp>.json|md.
Only 127.0.0.1 is contacted; every loop is bounded by time.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent / "src"))
sys.path.insert(0, str(BENCH))

import api as bench_api  # noqa: E402  (bench/api.py: the fill, the server, wrk)

RSS_TARGET_MB = 150.0


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def user_tokens(data_dir: Path, database_url: str, count: int, first_user: int) -> list[str]:
    """Give ``count`` filled users a read_api token each, whose values this process keeps."""
    from sqlalchemy import insert

    from keycrew.bootstrap import build
    from keycrew.config import Settings
    from keycrew.crypto import digest
    from keycrew.tokens.models import PersonalAccessToken
    from keycrew.tokens.secrets import PAT_PREFIX, generate

    settings = Settings(data_dir=data_dir, database_url=database_url)  # type: ignore[call-arg]
    runtime = build(settings)
    now = dt.datetime.now(dt.UTC)
    values, rows = [], []
    for i in range(count):
        value = generate(PAT_PREFIX)
        values.append(value)
        rows.append(
            {
                "user_id": first_user + i,
                "name": f"soak {i}",
                "description": None,
                "token_digest": digest(runtime.instance.secret_key, value),
                "scopes": ["read_api", "read_user"],
                "impersonation": False,
                "revoked": False,
                "expires_at": now.date() + dt.timedelta(days=300),
                "created_at": now,
                "updated_at": now,
            }
        )
    with runtime.engine.begin() as conn:
        conn.execute(insert(PersonalAccessToken), rows)
    runtime.engine.dispose()
    return values


def lua_script(paths: list[str], tokens: list[str]) -> str:
    quoted_paths = ",\n".join(json.dumps(p) for p in paths)
    quoted_tokens = ",\n".join(json.dumps(t) for t in tokens)
    return f"""
math.randomseed(7)
local paths = {{
{quoted_paths}
}}
local tokens = {{
{quoted_tokens}
}}
request = function()
  local path = paths[math.random(#paths)]
  local token = tokens[math.random(#tokens)]
  path = string.gsub(path, "RANDOM_USER", tostring(math.random(2, {{max_user}})))
  path = string.gsub(path, "RANDOM_PROJECT", tostring(math.random(1, {{max_project}})))
  path = string.gsub(path, "RANDOM_GROUP", tostring(math.random({{first_group}}, {{last_group}})))
  return wrk.format("GET", path, {{["PRIVATE-TOKEN"] = token}})
end
"""


def writer(url: str, stop: threading.Event, per_second: float, done: list[int]) -> None:
    """Token create and revoke by root, paced, until ``stop``."""
    expires = (dt.datetime.now(dt.UTC).date() + dt.timedelta(days=30)).isoformat()
    pause = 1.0 / per_second if per_second > 0 else None
    while pause is not None and not stop.wait(pause):
        try:
            created = bench_api.api_json(
                url,
                "POST",
                "/api/v4/users/1/personal_access_tokens",
                {"name": f"soak {time.monotonic()}", "scopes": ["api"], "expires_at": expires},
            )
            revoke = urllib.request.Request(
                f"{url}/api/v4/personal_access_tokens/{created['id']}",
                method="DELETE",
                headers={"PRIVATE-TOKEN": bench_api.ROOT_TOKEN},
            )
            with urllib.request.urlopen(revoke, timeout=60) as response:
                assert response.status == 204
            done[0] += 1
        except Exception as exc:  # keep soaking; count what failed
            done[1] += 1
            if done[1] <= 3:
                print(f"  writer: {type(exc).__name__}: {exc}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--users-with-tokens", type=int, default=2000)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--writes-per-second", type=float, default=10.0)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("bench/soak.py needs wrk: apt-get install -y wrk (or `make bench`)")
    tmp = Path(tempfile.mkdtemp(prefix="keycrew-soak-"))
    database = bench_api.Database(args.backend, tmp)
    server: subprocess.Popen[bytes] | None = None
    stop = threading.Event()
    try:
        filled = bench_api.fill(tmp, database.url, args.scale)
        first_user = filled.user_id
        tokens = [bench_api.ROOT_TOKEN] * 4 + user_tokens(
            tmp, database.url, min(args.users_with_tokens, filled.users), first_user
        )
        port = bench_api.free_port()
        url = f"http://127.0.0.1:{port}"
        log = tmp / "serve.log"
        server = bench_api.start_keycrew(bench_api.keycrew_env(tmp, database.url, url), port, 1, log)
        bench_api.wait_healthy(url + "/-/readiness", server)
        bench_api.lift_rate_limits(url)
        max_user = first_user + filled.users - 1
        paths = [
            "/api/v4/user",
            "/api/v4/personal_access_tokens/self",
            "/api/v4/personal_access_tokens?per_page=20",
            "/api/v4/users/RANDOM_USER",
            "/api/v4/projects/RANDOM_PROJECT",
            "/api/v4/groups/RANDOM_GROUP",
            "/api/v4/projects?per_page=20",
            "/api/v4/users?per_page=20",
            "/api/v4/groups/RANDOM_GROUP/projects",
            "/api/v4/projects/RANDOM_PROJECT/members/all",
            "/api/v4/groups/RANDOM_GROUP/members/all",
        ]
        script = (
            lua_script(paths, tokens)
            .replace("{max_user}", str(max_user))
            .replace("{max_project}", str(filled.project_id + filled.projects - 1))
            .replace("{first_group}", str(filled.group_id))
            .replace("{last_group}", str(filled.group_id + max(filled.groups - 1, 0)))
        )
        lua = tmp / "soak.lua"
        lua.write_text(script)
        seconds = int(args.minutes * 60)
        baseline = rss_mb(server.pid)
        print(f"{args.backend}: idle worker RSS {baseline:.1f} MB; soaking for {seconds} s", flush=True)
        done = [0, 0]
        writes = threading.Thread(target=writer, args=(url, stop, args.writes_per_second, done), daemon=True)
        writes.start()
        load = subprocess.Popen(
            ["wrk", "-t2", f"-c{args.connections}", f"-d{seconds}s", "--timeout", "10s", "-s", str(lua), url],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        samples: list[tuple[float, float]] = []
        started = time.monotonic()
        while load.poll() is None and time.monotonic() - started < seconds + 60:
            time.sleep(10)
            if server.poll() is not None:
                raise RuntimeError(
                    f"keycrew serve exited with {server.returncode}: {log.read_text()[-2000:]}"
                )
            samples.append((round(time.monotonic() - started, 1), round(rss_mb(server.pid), 1)))
            print(f"  t={samples[-1][0]:6.0f} s  RSS {samples[-1][1]:6.1f} MB", flush=True)
        stop.set()
        wrk_out = load.communicate(timeout=120)[0]
        rate = bench_api.re.search(r"Requests/sec:\s+([\d.]+)", wrk_out)
        half = [rss for t, rss in samples if t >= seconds / 2]
        report: dict[str, Any] = {
            "backend": args.backend,
            "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "minutes": args.minutes,
            "scale": args.scale,
            "connections": args.connections,
            "credentials": len(set(tokens)),
            "requests_per_second": float(rate.group(1)) if rate else None,
            "writes": done[0],
            "failed_writes": done[1],
            "idle_rss_mb": round(baseline, 1),
            "samples": samples,
            "half_time_rss_mb": half[0] if half else None,
            "end_rss_mb": samples[-1][1] if samples else None,
            "peak_rss_mb": max((rss for _, rss in samples), default=None),
            "second_half_growth_mb": round(half[-1] - half[0], 1) if half else None,
            "target_mb": RSS_TARGET_MB,
            "wrk": wrk_out,
        }
        print(
            f"RSS idle {report['idle_rss_mb']} MB, half time {report['half_time_rss_mb']} MB, "
            f"end {report['end_rss_mb']} MB (target <= {RSS_TARGET_MB:.0f}), "
            f"peak {report['peak_rss_mb']} MB, "
            f"second half {report['second_half_growth_mb']:+} MB; {report['requests_per_second']} req/s, "
            f"{done[0]} token create+revoke pairs ({done[1]} failed)",
            flush=True,
        )
        out = BENCH / "results"
        out.mkdir(exist_ok=True)
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S")
        base = out / f"soak-{args.backend}-{stamp}"
        base.with_suffix(".json").write_text(json.dumps(report, indent=2))
        lines = [
            f"# bench/soak.py, {args.backend}, {args.minutes} min",
            "",
            f"{report['when']}; {report['credentials']} credentials, wrk -c{args.connections}, "
            f"{report['requests_per_second']} req/s; {done[0]} token create+revoke pairs.",
            "",
            "| t (s) | RSS (MB) |",
            "|---:|---:|",
            *[f"| {t:.0f} | {rss:.1f} |" for t, rss in samples],
            "",
            f"Idle {report['idle_rss_mb']} MB; end {report['end_rss_mb']} MB "
            f"(target <= {RSS_TARGET_MB:.0f}); "
            f"second half {report['second_half_growth_mb']:+} MB.",
        ]
        base.with_suffix(".md").write_text("\n".join(lines) + "\n")
        print(f"wrote {base}.json and .md", flush=True)
    finally:
        stop.set()
        bench_api.stop(server)
        database.drop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
