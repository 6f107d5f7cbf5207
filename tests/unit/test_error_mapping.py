"""Domain errors → each adapter's wording: GitLab's JSON (api), a sentence (web), a line (cli).

The domain's messages are plain; every status line ("403 Forbidden - ") is added by an adapter.
No server and no database: the mapping functions are called directly.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import typer

from keycrew import cli, errors
from keycrew.access.members import BulkResult
from keycrew.api import errors as api_errors
from keycrew.registry import pypi
from keycrew.tokens.authentication import EXPIRED
from keycrew.web import errors as web_errors

SCOPE_MESSAGE = "The request requires higher privileges than provided by the access token."


def rendered(exc: errors.KeycrewError) -> tuple[int, object]:
    response = api_errors.to_response(exc)
    return response.status_code, json.loads(response.body)


@pytest.mark.parametrize(
    ("kind", "code"),
    [
        (errors.KeycrewError, "error"),
        (errors.NotFound, "not_found"),
        (errors.Forbidden, "forbidden"),
        (errors.Refused, "refused"),
        (errors.Unauthenticated, "unauthenticated"),
        (errors.InvalidToken, "invalid_token"),
        (errors.InsufficientScope, "insufficient_scope"),
        (errors.Invalid, "invalid"),
        (errors.MissingParameter, "missing_parameter"),
        (errors.BadParameter, "bad_parameter"),
        (errors.Conflict, "conflict"),
        (errors.Unprocessable, "unprocessable"),
    ],
)
def test_every_kind_has_a_stable_code(kind: type[errors.KeycrewError], code: str) -> None:
    assert kind.code == code


def test_refused_is_a_forbidden_of_its_own_kind() -> None:
    refused = errors.Refused("You cannot ban active users.")
    assert isinstance(refused, errors.Forbidden)
    assert (refused.code, refused.message) == ("refused", "You cannot ban active users.")


def test_messages_default_to_empty() -> None:
    assert errors.Forbidden().message == ""
    assert errors.Unauthenticated().message == ""
    assert errors.NotFound("Project").message == "Project Not Found"
    assert errors.InsufficientScope(["api"]).message == SCOPE_MESSAGE


@pytest.mark.parametrize(
    ("exc", "status", "body"),
    [
        (errors.NotFound("Project"), 404, {"message": "404 Project Not Found"}),
        (
            errors.NotFound("User with ID or username 'x'"),
            404,
            {"message": "404 User with ID or username 'x' Not Found"},
        ),
        (errors.Unauthenticated(), 401, {"message": "401 Unauthorized"}),
        # GitLab's body whatever the domain says (git and the registry answer with their own).
        (errors.Unauthenticated("HTTP Basic: Access denied"), 401, {"message": "401 Unauthorized"}),
        (errors.Forbidden(), 403, {"message": "403 Forbidden"}),
        (errors.Forbidden("The user is blocked"), 403, {"message": "403 Forbidden - The user is blocked"}),
        (errors.Refused("You cannot ban active users."), 403, {"message": "You cannot ban active users."}),
        (errors.Refused(), 403, {"message": "403 Forbidden"}),
        (
            errors.InsufficientScope(["api", "read_api"]),
            403,
            {"error": "insufficient_scope", "error_description": SCOPE_MESSAGE, "scope": "api read_api"},
        ),
        (errors.Invalid("File is too large"), 400, {"message": "400 Bad request - File is too large"}),
        (errors.Invalid(), 400, {"message": "400 Bad request"}),
        (errors.Invalid.field("name", "is too long"), 400, {"message": {"name": ["is too long"]}}),
        (errors.MissingParameter("name is missing"), 400, {"error": "name is missing"}),
        (
            errors.BadParameter("sort does not have a valid value"),
            400,
            {"error": "sort does not have a valid value"},
        ),
        (errors.Conflict("Member already exists"), 409, {"message": "Member already exists"}),
        (errors.Conflict(), 409, {"message": "409 Conflict"}),
        (
            errors.Unprocessable("Unsupported token type"),
            422,
            {"message": "422 Unprocessable Entity - Unsupported token type"},
        ),
        (errors.Unprocessable(), 422, {"message": "422 Unprocessable Entity"}),
        (
            errors.KeycrewError("at most 10 scopes per request"),
            400,
            {"message": "400 Bad request - at most 10 scopes per request"},
        ),
        (errors.KeycrewError(), 400, {"message": "400 Bad request"}),
    ],
    ids=lambda value: value.code if isinstance(value, errors.KeycrewError) else None,
)
def test_api_words_each_kind_as_gitlab(exc: errors.KeycrewError, status: int, body: object) -> None:
    assert rendered(exc) == (status, body)


def test_api_invalid_token_is_oauth_shaped_with_a_challenge() -> None:
    response = api_errors.to_response(errors.InvalidToken(EXPIRED))
    assert response.status_code == 401
    assert json.loads(response.body) == {"error": "invalid_token", "error_description": EXPIRED}
    assert response.headers["WWW-Authenticate"] == (
        f'Bearer realm="keycrew", error="invalid_token", error_description="{EXPIRED}"'
    )


def test_api_body_is_compact_json() -> None:
    # Byte for byte what GitLab (and keycrew before the plain messages) sends.
    response = api_errors.to_response(errors.Forbidden("The user is blocked"))
    assert response.body == b'{"message":"403 Forbidden - The user is blocked"}'
    assert response.headers["content-type"] == "application/json"


def test_api_words_a_subclass_as_its_parent_kind() -> None:
    class Custom(errors.Forbidden):
        code = "custom"

    assert rendered(Custom("why")) == (403, {"message": "403 Forbidden - why"})


def test_api_reason_inside_a_bulk_answer() -> None:
    assert api_errors.reason(errors.Forbidden()) == "403 Forbidden"
    assert api_errors.reason(errors.Forbidden("why")) == "why"
    assert api_errors.reason(errors.Invalid("Access level is not included in the list")) == (
        "Access level is not included in the list"
    )
    assert api_errors.reason(errors.NotFound("Member")) == "Member Not Found"
    result = BulkResult([("alice", errors.Forbidden()), ("bob", errors.Invalid("User is blocked"))])
    assert result.as_json(api_errors.reason) == {
        "status": "error",
        "message": "alice: 403 Forbidden, bob: User is blocked",
    }
    assert BulkResult([]).as_json(api_errors.reason) == {"status": "success"}


def test_pypi_answers_its_own_401_and_429() -> None:
    unauthenticated = pypi.error_response(errors.Unauthenticated())
    assert unauthenticated.status_code == 401
    assert json.loads(unauthenticated.body) == {"message": "401 Unauthorized"}
    assert unauthenticated.headers["WWW-Authenticate"] == 'Basic realm="keycrew"'
    banned = pypi.error_response(pypi.TooManyFailures(30))
    assert banned.status_code == 429
    assert json.loads(banned.body) == {
        "message": "429 Too Many Requests - Too many failed authentication attempts from this IP"
    }
    assert banned.headers["Retry-After"] == "30"


@pytest.mark.parametrize(
    ("exc", "sentence", "status"),
    [
        (errors.NotFound("Project"), "Project not found.", 404),
        (errors.Unauthenticated(), "That cannot be done.", 404),
        (errors.Forbidden(), "You are not allowed to do that.", 403),
        (errors.Forbidden("The user is blocked"), "The user is blocked.", 403),
        (errors.Refused("You cannot ban active users."), "You cannot ban active users.", 403),
        (errors.Refused(), "You are not allowed to do that.", 403),
        (errors.InsufficientScope(["api"]), SCOPE_MESSAGE, 403),
        (errors.InvalidToken(EXPIRED), EXPIRED, 400),
        (errors.Invalid("File is too large"), "File is too large.", 400),
        (errors.Invalid(), "That cannot be done.", 400),
        (errors.Invalid.field("name", "is too long"), "Name is too long.", 400),
        (
            errors.Invalid("", {"base": ["must be unique"], "expires_at": ["is in the past"]}),
            "Must be unique. Expires at is in the past.",
            400,
        ),
        (errors.MissingParameter("name is missing"), "Name is required.", 400),
        (errors.BadParameter("sort does not have a valid value"), "Sort is not valid.", 400),
        (errors.Conflict("Member already exists"), "Member already exists.", 409),
        (errors.Unprocessable("Unsupported token type"), "Unsupported token type.", 422),
    ],
    ids=lambda value: value.code if isinstance(value, errors.KeycrewError) else None,
)
def test_web_words_each_kind_for_people(exc: errors.KeycrewError, sentence: str, status: int) -> None:
    assert web_errors.describe(exc) == sentence
    assert web_errors.status_of(exc) == status


@pytest.mark.parametrize(
    ("exc", "line"),
    [
        (errors.Forbidden(), "forbidden"),
        (errors.Forbidden("The user is blocked"), "The user is blocked"),
        (errors.Refused("You cannot ban active users."), "You cannot ban active users."),
        (errors.Unauthenticated(), "unauthenticated"),
        (errors.NotFound("User"), "User Not Found"),
        (errors.Conflict("Username has already been taken"), "Username has already been taken"),
        (errors.BadParameter("plan does not have a valid value"), "plan does not have a valid value"),
        (
            errors.Invalid("", {"expires_at": ["can't be before", "is wrong"]}),
            "expires_at can't be before and is wrong",
        ),
    ],
    ids=lambda value: value.code if isinstance(value, errors.KeycrewError) else None,
)
def test_cli_words_each_kind_as_one_line(exc: errors.KeycrewError, line: str) -> None:
    assert cli._describe(exc) == line


def test_cli_exits_1_on_any_domain_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(typer.Exit) as exited:
        cli._fail_domain(errors.Forbidden("The user is blocked"))
    assert exited.value.exit_code == 1
    assert "keycrew: The user is blocked" in capsys.readouterr().err


# Where errors are worded for a protocol; everywhere else raises domain errors with plain messages.
WORDING = ("api/errors.py", "git/", "registry/", "app.py", "errors.py")
STATUS_WORDING = re.compile(r"""["'](?:40\d|422|429|50\d) [A-Z]""")


def test_no_status_wording_outside_the_adapters_mappings() -> None:
    root = Path(errors.__file__).parent
    offenders = []
    for path in sorted(root.rglob("*.py")):
        relative = path.relative_to(root).as_posix()
        if relative.startswith(WORDING):
            continue
        for number, text in enumerate(path.read_text().splitlines(), 1):
            if STATUS_WORDING.search(text):
                offenders.append(f"{relative}:{number}: {text.strip()}")
    assert offenders == []
