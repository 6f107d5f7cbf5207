"""Service Desk's pure rules: addresses and keys, loop protection, reply trimming, file names."""

from __future__ import annotations

from email import message_from_string
from email import policy as email_policy
from pathlib import Path

import pytest

from keycrew.config import Settings
from keycrew.servicedesk.address import full_path_slug, incoming_address, key_of, project_key_part
from keycrew.servicedesk.incoming import loop_reason, safe_filename, sender_of, trim_reply
from keycrew.servicedesk.settings import substitute


def _settings(tmp_path: Path, address: str = "incoming+%{key}@Desk.Example.com") -> Settings:
    return Settings(
        data_dir=tmp_path, external_url="http://keycrew.example.com", incoming_email_address=address
    )


def test_addresses_follow_gitlabs_form(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    incoming = incoming_address(settings)
    assert incoming is not None
    assert full_path_slug("Acme/Web App") == "acme-web-app"
    assert full_path_slug("-a/" + "b" * 80) == ("a-" + "b" * 80)[:62]
    assert (
        incoming.format(project_key_part("acme/web", 20, None))
        == "incoming+acme-web-20-issue-@desk.example.com"
    )
    assert (
        incoming.format(project_key_part("acme/web", 20, "ops")) == "incoming+acme-web-ops@desk.example.com"
    )
    assert key_of(settings, "Incoming+acme-web-20-issue-@DESK.example.com") == "acme-web-20-issue-"
    assert key_of(settings, "<incoming+abc@desk.example.com>") == "abc"
    assert key_of(settings, "incoming@desk.example.com") is None
    assert key_of(settings, "incoming+abc@elsewhere.example.com") is None
    assert key_of(settings, "other+abc@desk.example.com") is None


@pytest.mark.parametrize("address", ["", "incoming@example.com", "incoming+%{key}", "%{key}@example.com"])
def test_an_address_without_a_key_configures_nothing(tmp_path: Path, address: str) -> None:
    assert incoming_address(_settings(tmp_path, address)) is None


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ("Auto-Submitted: auto-replied\n", "Auto-Submitted: auto-replied"),
        ("Auto-Submitted: no\n", None),
        ("Precedence: Bulk\n", "Precedence: bulk"),
        ("Precedence: first-class\n", None),
        ("X-Autoreply: yes\n", "auto-reply (X-Autoreply)"),
        ("Return-Path: <>\n", "bounce (null sender)"),
    ],
)
def test_loops_and_auto_replies_are_recognised(tmp_path: Path, headers: str, expected: str | None) -> None:
    message = message_from_string(
        f"From: someone@example.org\nTo: x@example.com\n{headers}Subject: hi\n\nbody\n",
        policy=email_policy.default,
    )
    assert loop_reason(message, _settings(tmp_path)) == expected


@pytest.mark.parametrize(
    "sender", ["MAILER-DAEMON@example.org", "keycrew@keycrew.example.com", "incoming+abc@desk.example.com"]
)
def test_mail_from_daemons_and_from_ourselves_is_ignored(tmp_path: Path, sender: str) -> None:
    message = message_from_string(f"From: {sender}\nSubject: hi\n\nbody\n", policy=email_policy.default)
    assert loop_reason(message, _settings(tmp_path)) is not None


def test_the_external_author_is_reply_to_then_from() -> None:
    both = message_from_string(
        "From: a@example.org\nReply-To: B <B@example.org>\n\nx\n", policy=email_policy.default
    )
    assert sender_of(both) == "b@example.org"
    assert sender_of(message_from_string("Subject: x\n\nx\n", policy=email_policy.default)) is None


def test_a_reply_loses_its_quoted_text() -> None:
    text = "Thanks, it works.\n\nOn Mon, 7 Dec 2026, Support wrote:\n> Did you try?\n>\n> Bye"
    assert trim_reply(text) == "Thanks, it works."
    assert trim_reply("> only quoted\nnew line") == "new line"
    assert trim_reply("On this topic I wrote:\nmore text") == "On this topic I wrote:\nmore text"


def test_file_names_are_made_safe() -> None:
    assert safe_filename("../../etc/passwd") == "passwd"
    assert safe_filename("C:\\temp\\crash log.txt") == "crash_log.txt"
    assert safe_filename("...") == "attachment"


def test_placeholders_are_substituted_and_unknown_ones_kept() -> None:
    assert substitute("Ticket %{ISSUE_ID}: %{NOPE}", {"ISSUE_ID": "#3"}) == "Ticket #3: %{NOPE}"
