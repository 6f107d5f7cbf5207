"""How the transfer routes word refusals: GitLab's bare 400 messages (no "400 Bad request - ")."""

from __future__ import annotations

import json

from keycrew import errors
from keycrew.api import errors as api_errors
from keycrew.api.routes.transfers import _ruby_hash


def test_a_rejection_is_its_message_alone() -> None:
    response = api_errors.to_response(errors.Rejected("Transfer failed: Group is already a root group."))
    assert response.status_code == 400
    assert json.loads(response.body) == {"message": "Transfer failed: Group is already a root group."}
    # Still an Invalid for the other adapters (the web UI's sentence, the CLI's exit code).
    assert isinstance(errors.Rejected("x"), errors.Invalid)


def test_model_errors_print_as_a_ruby_hash() -> None:
    assert _ruby_hash({"new_namespace": ["Project is already in this namespace."]}) == (
        '{:new_namespace=>["Project is already in this namespace."]}'
    )
    assert _ruby_hash({"a": ["x", 'say "y"'], "b": ["z"]}) == '{:a=>["x", "say \\"y\\""], :b=>["z"]}'
