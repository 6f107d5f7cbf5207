"""The API contract: /-/openapi.json describes what keycrew really reads and answers.

schemathesis generates requests for every operation of the document (valid ones, and invalid ones
its coverage phase derives from the schema: wrong types, missing required parameters, methods a
path does not take) against a live keycrew of its own, and checks each answer: never a 5xx, a
status the operation documents, the documented content type, body schema and headers, and 405
with ``Allow`` for a method the path does not take.

``make test`` runs a small budget on SQLite; ``make fuzz`` (KEYCREW_FUZZ=1) a larger one on both
databases (KEYCREW_FUZZ_EXAMPLES sets the examples per operation).

schemathesis spends an admin of its own (fuzz_admin): it may block, delete or demote anyone,
revoke or rotate any token, its own too, and set the request throttles; whenever its credential
stops working (or the API is throttled) a new admin and token are made in-process and the throttles
switched off, so the run never depends on what it destroyed.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import requests
import schemathesis
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi import checks as openapi_checks

from keycrew.app import create_app
from keycrew.bootstrap import build
from keycrew.clock import today
from keycrew.config import Settings
from keycrew.context import Actor
from keycrew.identity.users import create_user
from keycrew.instance.settings import SETTINGS, update_settings
from keycrew.tokens.personal import create_personal_access_token
from keycrew.tokens.scopes import ALL_SCOPES
from tests.support.backends import BACKENDS
from tests.support.live import LiveServer, start_server, uid

FUZZ = os.environ.get("KEYCREW_FUZZ", "") not in ("", "0", "false")
MAX_EXAMPLES = int(os.environ.get("KEYCREW_FUZZ_EXAMPLES", "60" if FUZZ else "4"))
STATEFUL_EXAMPLES = MAX_EXAMPLES * 2

CHECKS = [
    schemathesis.checks.not_a_server_error,
    openapi_checks.status_code_conformance,
    openapi_checks.content_type_conformance,
    openapi_checks.response_headers_conformance,
    openapi_checks.response_schema_conformance,
    openapi_checks.unsupported_method,
]


class Credential:
    """The fuzzing admin's token, replaced by a fresh admin's whenever it stops working."""

    def __init__(self, server: LiveServer) -> None:
        self.server = server
        self.token = self.mint()

    def mint(self) -> str:
        """A new admin with a token of every scope; the request throttles switched off again (the
        run may have set tiny limits, and over a limit of 0 the API itself refuses to)."""
        runtime = self.server.runtime
        name = uid("fuzz")
        throttles = [key for key in SETTINGS if key.startswith("throttle_") and key.endswith("_enabled")]
        with runtime.sessions() as db, db.begin():
            ctx = runtime.ctx(db, Actor.system())
            user = create_user(ctx, username=name, email=f"{name}@example.com", name=name, admin=True)
            as_admin = ctx.as_actor(Actor.system(user))
            update_settings(as_admin, dict.fromkeys(throttles, False))
            issued = create_personal_access_token(
                as_admin,
                user,
                name="schemathesis",
                scopes=list(ALL_SCOPES),
                expires_at=today(runtime.clock) + dt.timedelta(days=30),
            )
        return issued.value

    def usable(self) -> bool:
        response = self.server.request("GET", "/user", token=self.token)
        return response.status_code == 200 and response.json().get("is_admin") is True

    def after(self, case: Any, response: Any) -> None:
        """Keep the next case's credential working, whatever this one did."""
        changed_settings = case.path == "/api/v4/application/settings" and response.status_code == 200
        if (
            response.status_code == 429
            or changed_settings
            or (response.status_code in (401, 403) and not self.usable())
        ):
            self.token = self.mint()


@pytest.fixture(scope="module", params=BACKENDS if FUZZ else ["sqlite"])
def contract_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    nodes = start_server(request.param, Path(tmp_path_factory.mktemp(f"contract-{request.param}")))
    live = next(nodes)
    try:
        yield live
    finally:
        nodes.close()


@pytest.fixture(scope="module")
def credential(contract_server: LiveServer) -> Credential:
    return Credential(contract_server)


def build_document() -> dict[str, Any]:
    """The document of a keycrew app, built when the module is collected (schemathesis makes one
    test per operation then); the app's runtime opens no connection for it."""
    data_dir = Path(tempfile.mkdtemp(prefix="keycrew-openapi-"))
    settings = Settings(data_dir=data_dir, database_url=f"sqlite:///{data_dir / 'keycrew.sqlite3'}")
    runtime = build(settings)
    try:
        return create_app(runtime).openapi()
    finally:
        runtime.engine.dispose()
        shutil.rmtree(data_dir, ignore_errors=True)


DOCUMENT = build_document()
CONFIG = SchemathesisConfig.from_dict(
    {
        "request-timeout": 30,
        "suppress-health-check": ["too_slow", "filter_too_much", "data_too_large", "large_base_example"],
        "generation": {
            "max-examples": MAX_EXAMPLES,
            "with-security-parameters": False,
            "database": "none",
            "no-shrink": not FUZZ,
        },
    }
)
schema = schemathesis.openapi.from_dict(DOCUMENT, config=CONFIG)


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return DOCUMENT


@schema.parametrize()
def test_every_operation_keeps_the_contract(case: Any, credential: Credential) -> None:
    response = case.call_and_validate(
        base_url=credential.server.url, headers={"PRIVATE-TOKEN": credential.token}, checks=CHECKS
    )
    credential.after(case, response)


def test_workflows_along_the_links_keep_the_contract(credential: Credential) -> None:
    """Stateful: sequences of calls that follow the document's links (create a project, then read,
    change, delete it or add its members...), each answer checked as above."""
    failures: list[BaseException] = []

    class Workflow(schema.as_state_machine()):  # type: ignore[misc]
        def get_call_kwargs(self, case: Any) -> dict[str, Any]:
            return {"base_url": credential.server.url, "headers": {"PRIVATE-TOKEN": credential.token}}

        def validate_response(
            self, response: Any, case: Any, additional_checks: Any = None, **kwargs: Any
        ) -> None:
            try:
                case.validate_response(response, checks=CHECKS, transport_kwargs=kwargs)
            except BaseException as exc:
                failures.append(exc)
                raise
            credential.after(case, response)

    try:
        Workflow.run(
            settings=hypothesis.settings(
                max_examples=STATEFUL_EXAMPLES,
                stateful_step_count=10,
                deadline=None,
                database=None,
                suppress_health_check=list(hypothesis.HealthCheck),
                # The server's state moves on: a scenario cannot be replayed to shrink it.
                phases=[hypothesis.Phase.generate],
            )
        )
    except hypothesis.errors.Flaky:
        # Hypothesis replays a scenario it finds interesting, and against a server whose state moved
        # on the replay draws differently (schemathesis' own runner ends the suite there too). Only
        # a response that broke the contract fails the test, reported as it was found.
        if failures:
            raise failures[0] from None


# -- the document and the 405s, checked directly ------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("PATCH", "/users/1", "DELETE, GET, PUT"),
        ("POST", "/projects/1", "DELETE, GET, HEAD, PUT"),
        ("PUT", "/users", "GET, POST"),
        ("GET", "/users/1/block", "POST"),
    ],
)
def test_a_method_the_path_does_not_take_answers_405_with_allow(
    contract_server: LiveServer, method: str, path: str, allowed: str
) -> None:
    response = contract_server.request(method, path, headers={"Accept": "application/json"})
    assert response.status_code == 405, response.text
    assert response.headers.get("Allow") == allowed
    assert response.json() == {"message": "405 Method Not Allowed"}


def test_the_document_describes_parameters_read_in_code(document: dict[str, Any]) -> None:
    projects = document["paths"]["/api/v4/projects"]
    listing = {p["name"]: p for p in projects["get"]["parameters"]}
    assert listing["search"]["schema"] == {"type": "string"}
    assert listing["per_page"]["schema"] == {"type": "integer"}
    assert "created_at" in listing["order_by"]["schema"]["enum"]
    body = projects["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert {"name", "path", "namespace_id", "visibility"} <= set(body["properties"])
    tokens = document["paths"]["/api/v4/user/personal_access_tokens"]["post"]
    form = tokens["requestBody"]["content"]["application/x-www-form-urlencoded"]["schema"]
    assert form["required"] == ["name", "scopes"]
    assert form["properties"]["scopes"] == {"type": "array", "items": {"type": "string"}}


def test_the_document_lists_the_statuses_the_routes_answer(document: dict[str, Any]) -> None:
    paths = document["paths"]
    assert set(paths["/api/v4/users/{user_id}"]["delete"]["responses"]) >= {"204", "401", "403", "404", "429"}
    assert "201" in paths["/api/v4/users/{user_id}/block"]["post"]["responses"]
    assert "409" in paths["/api/v4/groups"]["post"]["responses"]
    assert "422" not in paths["/api/v4/users/{user_id}"]["get"]["responses"]
    assert set(paths["/api/v4/users"]["get"]["responses"]["429"]["content"]) == {"text/plain"}  # GitLab's
    listing = paths["/api/v4/users"]["get"]["responses"]["200"]
    assert listing["content"]["application/json"]["schema"]["type"] == "array"
    assert "X-Total" in listing["headers"]


def test_python_gitlab_json_bodies_are_read(contract_server: LiveServer, credential: Credential) -> None:
    """The body the document describes is what python-gitlab sends: JSON, read like the form."""
    name = uid("p")
    response = requests.post(
        contract_server.api("/projects"),
        headers={"PRIVATE-TOKEN": credential.mint()},
        json={"name": name, "visibility": "internal"},
        timeout=30,
    )
    assert response.status_code == 201, response.text
    assert response.json()["visibility"] == "internal"


# -- what the fuzzer found ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["throttle_authenticated_api_enabled", "max_login_attempts"])
def test_a_blank_setting_changes_nothing(
    contract_server: LiveServer, credential: Credential, name: str
) -> None:
    """``PUT /application/settings?<setting>=`` answered 500 (NOT NULL): a blank value is no value."""
    token = credential.mint()
    before = contract_server.request("GET", "/application/settings", token=token).json()[name]
    response = contract_server.request("PUT", f"/application/settings?{name}=", token=token)
    assert response.status_code == 200, response.text
    assert response.json()[name] == before
