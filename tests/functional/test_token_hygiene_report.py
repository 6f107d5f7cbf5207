"""The token-hygiene report (keycrew.automation.hygiene, `keycrew report tokens`): real requests
through the live server feed the usage writer, then the report's checks are read back.

(tests/functional/test_token_hygiene.py is another thing: the test suite's own check that no token
value leaks into logs.)
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from typing import Any

import pytest
import requests
from sqlalchemy import select

from keycrew.automation.hygiene import Finding, least_scopes, token_hygiene
from keycrew.context import Actor
from keycrew.tokens.usage import TokenUsageDay, TokenUsageIp, TokenUsageScope
from tests.support.live import Factory, LiveServer, uid
from tests.support.processes import clean_env, keycrew


def report(server: LiveServer, *checks: str) -> list[Finding]:
    with server.runtime.sessions() as db:
        return token_hygiene(server.runtime.ctx(db, Actor.system()), checks or None)


def flush(server: LiveServer) -> None:
    assert server.runtime.usage is not None
    server.runtime.usage.flush(everything=True)


def token_id(server: LiveServer, token: str) -> int:
    return int(server.request("GET", "/personal_access_tokens/self", token=token).json()["id"])


def found(findings: list[Finding], check: str, tid: int) -> list[Finding]:
    return [f for f in findings if f.check == check and f.token_id == tid]


def in_days(server: LiveServer, days: int) -> str:
    return (server.clock.now().date() + dt.timedelta(days=days)).isoformat()


def test_an_api_token_used_only_for_reads_is_over_scoped(server: LiveServer, factory: Factory) -> None:
    _, reader = factory.user_with_token(["api", "write_repository"])
    _, writer = factory.user_with_token(["api"])
    reader_id, writer_id = token_id(server, reader), token_id(server, writer)
    gl = server.gl(reader)
    gl.auth()  # GET /user
    gl.projects.list(get_all=False)  # GET /projects
    assert server.request("POST", "/projects", token=writer, json={"name": uid("p")}).status_code == 201
    flush(server)
    with server.runtime.sessions() as db:
        uses = set(
            db.execute(
                select(TokenUsageScope.scope, TokenUsageScope.method).where(
                    TokenUsageScope.token_id == reader_id
                )
            )
        )
        written = set(
            db.execute(
                select(TokenUsageScope.scope, TokenUsageScope.method).where(
                    TokenUsageScope.token_id == writer_id
                )
            )
        )
    assert uses == {("read_user", "GET"), ("read_api", "GET")}
    assert ("api", "POST") in written

    # Too young to judge yet.
    assert found(report(server, "over_scoped"), "over_scoped", reader_id) == []
    server.clock.travel_to(server.clock.now() + dt.timedelta(days=8))
    findings = report(server, "over_scoped")
    [finding] = found(findings, "over_scoped", reader_id)
    assert finding.fix == "Rotate to read_api."
    assert finding.token_kind == "personal"
    assert "read_api (GET)" in finding.detail
    assert finding.severity == "medium"
    assert found(findings, "over_scoped", writer_id) == []  # it wrote: api is what it needs


def test_least_scopes() -> None:
    assert least_scopes(["read_api", "read_user"], bot=False) == ["read_api"]
    assert least_scopes(["read_user"], bot=True) == ["read_api"]
    assert least_scopes(["read_repository", "write_repository"], bot=False) == ["write_repository"]
    assert least_scopes(["api", "read_api", "read_registry"], bot=False) == ["api"]


def test_a_git_push_is_recorded_as_write_repository(server: LiveServer, factory: Factory) -> None:
    user, token = factory.user_with_token(["write_repository", "read_api"])
    project = factory.project(token=factory.token(user["id"], ["api"]))
    tid = token_id(server, token)
    refs = requests.get(
        f"{server.url}/{project['path_with_namespace']}.git/info/refs",
        params={"service": "git-receive-pack"},
        auth=("oauth2", token),
        timeout=30,
    )
    assert refs.status_code == 200
    flush(server)
    with server.runtime.sessions() as db:
        uses = set(
            db.execute(
                select(TokenUsageScope.scope, TokenUsageScope.method).where(TokenUsageScope.token_id == tid)
            )
        )
    assert ("write_repository", "GET") in uses


def test_a_token_used_from_many_addresses_is_shared(server: LiveServer, factory: Factory) -> None:
    _, shared = factory.user_with_token(["read_api"])
    _, single = factory.user_with_token(["read_api"])
    shared_id, single_id = token_id(server, shared), token_id(server, single)
    for n in range(7):
        response = server.request(
            "GET", "/user", token=shared, headers={"X-Forwarded-For": f"198.51.100.{n + 1}"}
        )
        assert response.status_code == 200
    for _ in range(3):
        server.request("GET", "/user", token=single, headers={"X-Forwarded-For": "198.51.100.200"})
    flush(server)
    with server.runtime.sessions() as db:
        ips = set(db.scalars(select(TokenUsageIp.ip).where(TokenUsageIp.token_id == shared_id)))
    assert {f"198.51.100.{n + 1}" for n in range(7)} <= ips
    findings = report(server, "shared")
    [finding] = found(findings, "shared", shared_id)
    assert "8 distinct IP addresses" in finding.detail  # the 7, and 127.0.0.1 (token_id's request)
    assert found(findings, "shared", single_id) == []
    # 31 days later, those addresses are out of the window.
    server.clock.travel_to(server.clock.now() + dt.timedelta(days=31))
    assert found(report(server, "shared"), "shared", shared_id) == []


def test_a_personal_token_used_around_the_clock_looks_like_automation(
    server: LiveServer, factory: Factory
) -> None:
    _, busy = factory.user_with_token(["read_api"])
    _, office = factory.user_with_token(["read_api"])
    busy_id, office_id = token_id(server, busy), token_id(server, office)
    day = dt.datetime.combine(server.clock.now().date() + dt.timedelta(days=2), dt.time(), dt.UTC)
    for hour in range(18):
        server.clock.travel_to(day + dt.timedelta(hours=hour, minutes=30))
        assert server.request("GET", "/user", token=busy).status_code == 200
        if 9 <= hour < 17:
            assert server.request("GET", "/user", token=office).status_code == 200
        flush(server)
    with server.runtime.sessions() as db:
        row = db.scalars(
            select(TokenUsageDay).where(TokenUsageDay.token_id == busy_id, TokenUsageDay.day == day.date())
        ).one()
    assert (row.day, row.hours, row.requests) == (day.date(), (1 << 18) - 1, 18)
    findings = report(server, "automation_like")
    [finding] = found(findings, "automation_like", busy_id)
    assert "used in 18 of 24 hours" in finding.detail
    assert found(findings, "automation_like", office_id) == []


def test_tokens_unused_for_30_days(server: LiveServer, factory: Factory) -> None:
    _, idle = factory.user_with_token(["read_api"])
    _, active = factory.user_with_token(["read_api"])
    idle_id, active_id = token_id(server, idle), token_id(server, active)
    flush(server)
    assert found(report(server, "unused"), "unused", idle_id) == []  # too new
    server.clock.travel_to(server.clock.now() + dt.timedelta(days=31))
    assert server.request("GET", "/user", token=active).status_code == 200
    flush(server)
    findings = report(server, "unused")
    [finding] = found(findings, "unused", idle_id)
    assert finding.fix == "Revoke the token if nothing needs it."
    assert found(findings, "unused", active_id) == []


def _project_token(server: LiveServer, project_id: int, **body: Any) -> dict[str, Any]:
    response = server.root(
        "POST", f"/projects/{project_id}/access_tokens", json={"name": uid("bot"), "scopes": ["api"]} | body
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


def test_expiring_tokens_with_nobody_to_notify(server: LiveServer, factory: Factory) -> None:
    orphan_owner, orphan_token = factory.user_with_token(["api"])
    _, kept_token = factory.user_with_token(["api"])
    orphan_project = factory.project(token=orphan_token)
    kept_project = factory.project(token=kept_token)
    orphan_bot = _project_token(server, orphan_project["id"], expires_at=in_days(server, 3))
    kept_bot = _project_token(server, kept_project["id"], expires_at=in_days(server, 3))
    late_bot = _project_token(server, orphan_project["id"], expires_at=in_days(server, 20))
    blocked_user, _ = factory.user_with_token()
    expiring_personal = factory.token(blocked_user["id"], ["read_api"], expires_at=in_days(server, 5))
    personal_id = token_id(server, expiring_personal)
    for user in (orphan_owner, blocked_user):
        assert server.root("POST", f"/users/{user['id']}/block").status_code == 201
    findings = report(server, "expiring_unnotified")
    [bot_finding] = found(findings, "expiring_unnotified", orphan_bot["id"])
    assert bot_finding.token_kind == "project"
    assert bot_finding.resource == orphan_project["path_with_namespace"]
    assert bot_finding.owner_id == orphan_bot["user_id"]
    assert "in 3 days" in bot_finding.detail
    assert found(findings, "expiring_unnotified", kept_bot["id"]) == []
    assert found(findings, "expiring_unnotified", late_bot["id"]) == []
    [personal] = found(findings, "expiring_unnotified", personal_id)
    assert personal.owner_username == blocked_user["username"]
    assert "blocked" in personal.detail


def test_bots_with_the_owner_role(server: LiveServer, factory: Factory) -> None:
    project = factory.project()
    owner_bot = _project_token(server, project["id"], access_level=50)
    maintainer_bot = _project_token(server, project["id"], access_level=40)
    findings = report(server, "bot_owner")
    [finding] = found(findings, "bot_owner", owner_bot["id"])
    assert f"Owner of the project {project['path_with_namespace']}" in finding.detail
    assert finding.severity == "high"
    assert found(findings, "bot_owner", maintainer_bot["id"]) == []


def _deploy_token(server: LiveServer, project_id: int) -> dict[str, Any]:
    response = server.root(
        "POST",
        f"/projects/{project_id}/deploy_tokens",
        json={"name": uid("dt"), "scopes": ["read_repository"]},
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


def test_deploy_tokens_without_expiry(server: LiveServer, factory: Factory) -> None:
    project = factory.project()
    deploy = _deploy_token(server, project["id"])
    findings = report(server, "no_expiry")
    [finding] = [f for f in findings if f.token_kind == "deploy" and f.token_id == deploy["id"]]
    assert finding.resource == project["path_with_namespace"]
    assert finding.fix.startswith("Set an expiry date of at most 365 days")


@pytest.fixture
def cli_env(server: LiveServer) -> dict[str, str]:
    return clean_env(server.data_dir, KEYCREW_DATABASE_URL=str(server.runtime.settings.database_url))


def test_report_tokens_cli_in_three_formats(
    server: LiveServer, factory: Factory, cli_env: dict[str, str]
) -> None:
    project = factory.project()
    deploy = _deploy_token(server, project["id"])
    owner_bot = _project_token(server, project["id"], access_level=50)

    table = keycrew("report", "tokens", env=cli_env | {"COLUMNS": "250"})
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split() == [
        "CHECK",
        "SEVERITY",
        "TOKEN_ID",
        "TOKEN_NAME",
        "TOKEN_KIND",
        "OWNER_USERNAME",
        "RESOURCE",
        "FIX",
    ]
    [bot_line] = [line for line in lines if line.split()[:3] == ["bot_owner", "high", str(owner_bot["id"])]]
    assert project["path_with_namespace"] in bot_line.split()
    assert bot_line.endswith("Lower the role to Maintainer or below (bots rarely need Owner).")
    assert any(
        line.split()[:3] == ["no_expiry", "high", str(deploy["id"])] and deploy["name"] in line
        for line in lines
    )
    assert "finding(s)" in table.stderr

    as_json = keycrew("report", "tokens", "--format", "json", "--check", "bot_owner", env=cli_env)
    assert as_json.returncode == 0, as_json.stderr
    rows = json.loads(as_json.stdout)
    assert {row["check"] for row in rows} == {"bot_owner"}
    mine = [row for row in rows if row["token_id"] == owner_bot["id"]]
    assert len(mine) == 1
    assert mine[0]["resource"] == project["path_with_namespace"]
    assert mine[0]["resource_kind"] == "project"
    assert mine[0]["fix"].startswith("Lower the role")

    as_csv = keycrew("report", "tokens", "--format", "csv", "--check", "no_expiry", env=cli_env)
    assert as_csv.returncode == 0, as_csv.stderr
    parsed = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert {row["check"] for row in parsed} == {"no_expiry"}
    deploy_rows = [r for r in parsed if r["token_kind"] == "deploy" and r["token_id"] == str(deploy["id"])]
    assert len(deploy_rows) == 1
    assert deploy_rows[0]["resource"] == project["path_with_namespace"]

    bad = keycrew("report", "tokens", "--check", "nope", env=cli_env)
    assert bad.returncode == 2
    assert "unknown check 'nope'" in bad.stderr
    helped = keycrew("report", "tokens", "--help", env=cli_env | {"COLUMNS": "200"})
    assert helped.returncode == 0
    assert "--format" in helped.stdout
    assert "--check" in helped.stdout
