"""Benchmark: the ghost-migration job moving a deleted user's records, against one raw UPDATE.

    python bench/ghost.py [--backend sqlite|postgresql|both] [--records 1000000] [--rounds 3]
                          [--batch N]

One user authors ``--records`` records (half issues, half notes, inserted with INSERT ... SELECT
from a recursive CTE / generate_series) in a database that also holds root's records. Each round
makes two fresh copies of that database (a file copy for SQLite, CREATE DATABASE ... TEMPLATE for
PostgreSQL) and, in alternating order:

  raw: one transaction of ``UPDATE issues SET author_id = :ghost WHERE author_id = :user`` and
       the same for notes: the floor, what a single statement costs on this database;
  job: a ``ghost_user_migrations`` row for the user (what DELETE /users/:id leaves), then the
       ghost-migration job's body, in process (batches, a transaction each, the progress
       counts, then the user's deletion);

and prints job/raw (target <= 2). ``--batch`` overrides records.ghost_migrations.BATCH_SIZE.
Nothing is contacted but the local database; every copy is dropped at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

PG_ADMIN = os.environ.get("KEYCREW_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
ROOT_TOKEN = "glpat-bench-root-token-000000000001"
ROOT_PASSWORD = "bench-root-password-1"
RESULTS = Path(__file__).resolve().parent / "results"


class Copies:
    """The template database of one backend and fresh copies of it."""

    def __init__(self, backend: str, base: Path) -> None:
        self.backend = backend
        self.base = base
        self.template_dir = base / "template"
        self.pg_names: list[str] = []
        if backend == "sqlite":
            self.template_url = f"sqlite:///{self.template_dir / 'keycrew.sqlite3'}"
        else:
            self.template_name = self._create_pg(None)
            self.template_url = self._pg_url(self.template_name)

    def _pg_url(self, name: str) -> str:
        base = PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
        return f"{base}/{name}"

    def _create_pg(self, template: str | None) -> str:
        import psycopg

        name = f"keycrew_bench_ghost_{secrets.token_hex(4)}"
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            suffix = f' TEMPLATE "{template}"' if template else ""
            conn.execute(f'CREATE DATABASE "{name}"{suffix}')
        self.pg_names.append(name)
        return name

    def copy(self, label: str) -> tuple[Path, str]:
        """A data directory and database URL holding a fresh copy of the template."""
        data_dir = self.base / f"{label}-{secrets.token_hex(3)}"
        shutil.copytree(self.template_dir, data_dir)
        if self.backend == "sqlite":
            return data_dir, f"sqlite:///{data_dir / 'keycrew.sqlite3'}"
        return data_dir, self._pg_url(self._create_pg(self.template_name))

    def drop(self, url: str, data_dir: Path) -> None:
        shutil.rmtree(data_dir, ignore_errors=True)
        if self.backend == "postgresql":
            import psycopg

            name = url.rsplit("/", 1)[1]
            with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            self.pg_names.remove(name)

    def close(self) -> None:
        import psycopg

        if self.backend == "postgresql":
            with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
                for name in self.pg_names:
                    conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        shutil.rmtree(self.base, ignore_errors=True)


def runtime_for(data_dir: Path, url: str) -> Any:
    from keycrew.bootstrap import build
    from keycrew.config import Settings

    settings = Settings(
        data_dir=data_dir,
        database_url=url,
        initial_root_token=ROOT_TOKEN,
        initial_root_password=ROOT_PASSWORD,
        jobs="off",
    )  # type: ignore[call-arg]
    return build(settings)


def fill(copies: Copies, records: int) -> dict[str, int]:
    """Migrate and seed the template, make the user, a project, the Ghost User and the records."""
    from sqlalchemy import text

    from keycrew.actions.projects import create_project
    from keycrew.bootstrap import migrate, seed
    from keycrew.context import Actor
    from keycrew.identity.internal import ghost
    from keycrew.identity.models import User
    from keycrew.identity.users import NewUser, admin_create_user

    copies.template_dir.mkdir(parents=True)
    runtime = runtime_for(copies.template_dir, copies.template_url)
    migrate(runtime)
    seed(runtime)
    with runtime.sessions() as db, db.begin():
        root = db.get(User, 1)
        ctx = runtime.ctx(db, Actor.system(root))
        user = admin_create_user(
            ctx,
            NewUser(
                username="prolific",
                email="prolific@bench.example.com",
                name="Prolific",
                password="a-long-password-1",
            ),
        )
        project = create_project(ctx, name="bench")
        heir = ghost(ctx)
        ids = {"user": user.id, "ghost": heir.id, "project": project.id, "root": 1}
    issues, notes = records // 2, records - records // 2
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None).isoformat(sep=" ")
    sqlite = copies.backend == "sqlite"
    series = (
        "WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < :count) SELECT n FROM s"
        if sqlite
        else "SELECT n FROM generate_series(1, :count) AS n"
    )
    stamp = ":now" if sqlite else "CAST(:now AS timestamptz)"
    started = time.perf_counter()
    with runtime.engine.begin() as conn:
        params = {"project": ids["project"], "now": now}
        # The user's issues, and as many of root's (so that the user's rows are not the whole table).
        for author, count, first_iid in ((ids["user"], issues, 0), (1, issues // 4, issues)):
            conn.execute(
                text(
                    "INSERT INTO issues (project_id, iid, title, description, author_id, state, "
                    "confidential, issue_type, created_at, updated_at) "
                    f"SELECT :project, :first + n, 'issue ' || n, '', :author, 'opened', false, 'issue', "
                    f"{stamp}, {stamp} FROM ({series}) AS g"
                ),
                params | {"author": author, "count": count, "first": first_iid},
            )
        low = conn.execute(
            text("SELECT min(id) FROM issues WHERE project_id = :p"), {"p": ids["project"]}
        ).scalar()
        for author, count in ((ids["user"], notes), (1, notes // 4)):
            conn.execute(
                text(
                    "INSERT INTO notes (project_id, issue_id, author_id, body, system, confidential, "
                    "created_at, updated_at) "
                    f"SELECT :project, :low + (n % :issues), :author, 'a comment', false, false, "
                    f"{stamp}, {stamp} FROM ({series}) AS g"
                ),
                params | {"author": author, "count": count, "low": low, "issues": issues},
            )
        project_row = "UPDATE projects SET last_issue_iid = :iid WHERE id = :project"
        conn.execute(text(project_row), {"iid": issues + issues // 4, "project": ids["project"]})
    runtime.engine.dispose()
    if sqlite:
        import sqlite3

        with contextlib.closing(sqlite3.connect(copies.template_dir / "keycrew.sqlite3")) as raw:
            raw.execute("ANALYZE")
            raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    else:
        import psycopg

        with psycopg.connect(copies.template_url.replace("+psycopg", ""), autocommit=True) as raw:
            raw.execute("VACUUM ANALYZE")
    print(f"  filled {records:,} records of the user in {time.perf_counter() - started:.1f} s", flush=True)
    return ids


def raw_update(data_dir: Path, url: str, ids: dict[str, int]) -> float:
    from sqlalchemy import text

    runtime = runtime_for(data_dir, url)
    try:
        started = time.perf_counter()
        with runtime.engine.begin() as conn:
            for table in ("issues", "notes"):
                conn.execute(
                    text(f"UPDATE {table} SET author_id = :ghost WHERE author_id = :user"),
                    {"ghost": ids["ghost"], "user": ids["user"]},
                )
        return time.perf_counter() - started
    finally:
        runtime.engine.dispose()


def job_run(data_dir: Path, url: str, ids: dict[str, int], records: int) -> float:
    from sqlalchemy import func, select

    from keycrew.automation.jobs import JobRun
    from keycrew.automation.registry import JOBS
    from keycrew.identity.models import User
    from keycrew.records.ghost_migrations import GhostUserMigration
    from keycrew.records.models import Issue, Note

    runtime = runtime_for(data_dir, url)
    try:
        now = runtime.clock.now()
        with runtime.sessions() as db, db.begin():
            db.add(
                GhostUserMigration(
                    user_id=ids["user"],
                    initiator_user_id=1,
                    hard_delete=False,
                    created_at=now,
                    updated_at=now,
                    consume_after=now,
                    moved={},
                    attempts=0,
                )
            )
        run = JobRun(runtime.sessions, runtime.instance, runtime.clock)
        started = time.perf_counter()
        JOBS["ghost-migration"].body(run)
        seconds = time.perf_counter() - started
        with runtime.sessions() as db:
            moved = sum(
                int(db.scalar(select(func.count()).select_from(m).where(m.author_id == ids["ghost"])) or 0)
                for m in (Issue, Note)
            )
            if moved != records or db.get(User, ids["user"]) is not None or run.counts["failed"]:
                raise SystemExit(f"the job did not finish its work: {moved} moved, counts {dict(run.counts)}")
        return seconds
    finally:
        runtime.engine.dispose()


def bench(backend: str, args: argparse.Namespace) -> dict[str, Any]:
    base = Path(tempfile.mkdtemp(prefix=f"keycrew-bench-ghost-{backend}-"))
    copies = Copies(backend, base)
    try:
        print(f"{backend}: filling the template database", flush=True)
        ids = fill(copies, args.records)
        raws: list[float] = []
        jobs: list[float] = []
        for round_no in range(args.rounds):
            order = ("raw", "job") if round_no % 2 == 0 else ("job", "raw")
            for which in order:
                data_dir, url = copies.copy(which)
                try:
                    if which == "raw":
                        raws.append(raw_update(data_dir, url, ids))
                    else:
                        jobs.append(job_run(data_dir, url, ids, args.records))
                finally:
                    copies.drop(url, data_dir)
            print(
                f"  round {round_no + 1}: raw UPDATE {raws[-1]:.2f} s, ghost-migration job {jobs[-1]:.2f} s, "
                f"ratio {jobs[-1] / raws[-1]:.2f}",
                flush=True,
            )
        raw, job = statistics.median(raws), statistics.median(jobs)
        # Each round's two runs ran back to back: the median of the paired ratios is the verdict.
        ratios = [j / r for j, r in zip(jobs, raws, strict=True)]
        return {
            "backend": backend,
            "records": args.records,
            "batch_size": args.batch,
            "rounds": args.rounds,
            "raw_seconds": raws,
            "job_seconds": jobs,
            "raw_median": raw,
            "job_median": job,
            "ratios": ratios,
            "ratio": statistics.median(ratios),
        }
    finally:
        copies.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=None, help="records per batch (default: the job's)")
    args = parser.parse_args()

    from keycrew.records import ghost_migrations

    if args.batch is not None:
        ghost_migrations.BATCH_SIZE = args.batch
    args.batch = ghost_migrations.BATCH_SIZE
    backends = ("sqlite", "postgresql") if args.backend == "both" else (args.backend,)
    results = [bench(backend, args) for backend in backends]
    print()
    print(
        "| backend | records | batch | raw UPDATE (median) | ghost-migration job (median) "
        "| job / raw, median of the rounds (target <= 2) |"
    )
    print("|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['backend']} | {r['records']:,} | {r['batch_size']:,} | {r['raw_median']:.2f} s | "
            f"{r['job_median']:.2f} s | {r['ratio']:.2f} |"
        )
    RESULTS.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = RESULTS / f"ghost-{args.backend}-{stamp}.json"
    out.write_text(json.dumps(results, indent=2))
    print(f"\nwritten {out}")
    if any(r["ratio"] > 2 for r in results):
        sys.exit(1)


if __name__ == "__main__":
    main()
