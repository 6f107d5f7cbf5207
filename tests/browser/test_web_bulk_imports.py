"""Direct transfer in Chromium: New group > Import group, the Import history page and an entity's
failures, against a server of its own with its scheduler on (the ``bulk-imports`` job starts as
soon as a migration is written) that is also its own source.

A person fills the form with a source group made with python-gitlab, lands on the history, and
reloads (a bounded poll) until each group and project is Finished, then follows the destination
link to the copy. Also: refusals next to their field with the token never written back into the
page (a destination that exists, a path with the instance's address), a migration whose subgroup
the source no longer serves ("See failures" and the failures page, at a phone's width), Cancel on
a migration held mid-copy by a proxy, and the pages 404 without a link while the admin setting is
off. Each outcome is checked in the database too, so a page that only looks right cannot pass."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import select

from keycrew.imports.bulk import BulkImport, BulkImportEntity
from tests.browser.pages import csrf_of, session_for, signed_in
from tests.browser.test_web_accessibility import AUDIT
from tests.functional.test_direct_transfer_job import FaultProxy
from tests.support.live import Factory, LiveServer, start_server, uid

PASSWORD = "a-long-password-1"
NEW = "/import/bulk_imports/new"
HISTORY = "/import/bulk_imports/history"
SETTINGS = {"bulk_import_enabled": True, "allow_local_requests_from_web_hooks_and_services": True}
# The job's source requests: one retry, no pauses, short timeouts.
FAST = {"import_source_retries": 1, "import_source_backoff": 0.0, "import_source_timeout": 20.0}
# How long a small migration may take on a busy machine.
WAIT = 90.0


@pytest.fixture(scope="module")
def node(server: LiveServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    nodes = start_server(server.backend, tmp_path_factory.mktemp("web-bulk-imports"), jobs="on", **FAST)
    live = next(nodes)
    assert live.root("PUT", "/application/settings", json=SETTINGS).status_code == 200
    try:
        yield live
    finally:
        nodes.close()


@pytest.fixture(scope="module")
def make(node: LiveServer) -> Factory:
    return Factory(node)


@pytest.fixture
def page(browser: Browser, node: LiveServer) -> Iterator[Page]:
    context = browser.new_context(base_url=node.url, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    try:
        yield context.new_page()
    finally:
        context.close()


# -- helpers ------------------------------------------------------------------------------------------


def imports_of(node: LiveServer, user_id: int) -> list[BulkImport]:
    with node.runtime.sessions() as db:
        rows = list(
            db.scalars(select(BulkImport).where(BulkImport.user_id == user_id).order_by(BulkImport.id))
        )
        for row in rows:
            db.expunge(row)
        return rows


def entities_of(node: LiveServer, import_id: int) -> dict[str, str]:
    with node.runtime.sessions() as db:
        rows = db.scalars(select(BulkImportEntity).where(BulkImportEntity.bulk_import_id == import_id))
        return {row.source_full_path: row.status for row in rows}


def fill(
    page: Page,
    url: str,
    token: str,
    source: str,
    slug: str,
    *,
    kind: str = "Group",
    namespace: str | None = None,
) -> None:
    page.get_by_label("Source instance URL").fill(url)
    page.get_by_label("Personal access token on the source").fill(token)
    page.get_by_label(kind, exact=True).check()
    page.get_by_label("Source full path").fill(source)
    if namespace is not None:
        page.get_by_label("Destination namespace").select_option(namespace)
    page.get_by_label("Destination path").fill(slug)
    page.get_by_role("button", name="Import", exact=True).click()
    page.wait_for_load_state()


def status_in_history(page: Page, source_path: str) -> str | None:
    badge = page.locator(f'tr[data-source-path="{source_path}"] [data-entity-status]')
    return badge.first.get_attribute("data-entity-status") if badge.count() else None


def wait_in_history(page: Page, source_path: str, wanted: set[str]) -> str:
    """Reload the history (bounded) until the row of ``source_path`` shows one of ``wanted``."""
    deadline = time.monotonic() + WAIT
    while True:
        page.goto(HISTORY)
        found = status_in_history(page, source_path)
        if found in wanted:
            return found
        assert time.monotonic() < deadline, f"{source_path} is still {found}"
        time.sleep(0.3)


def wait_until_ended(node: LiveServer, user_id: int) -> BulkImport:
    deadline = time.monotonic() + WAIT
    while True:
        (found,) = imports_of(node, user_id)
        if found.status in ("finished", "failed", "canceled", "timeout"):
            return found
        assert time.monotonic() < deadline, f"the migration is still {found.status}"
        time.sleep(0.2)


def source_group(node: LiveServer, token: str, issues: int = 2) -> tuple[Any, Any]:
    """A source group with a project holding ``issues`` issues (each with a comment)."""
    gl = node.gl(token)
    group = gl.groups.create({"name": uid("Src"), "path": uid("src")})
    project = gl.projects.create({"name": "App", "path": "app", "namespace_id": group.id})
    for n in range(issues):
        issue = project.issues.create({"title": f"issue {n}", "description": f"text {n}"})
        issue.notes.create({"body": f"comment on {n}"})
    return group, project


# -- the whole way ------------------------------------------------------------------------------------


def test_a_group_is_imported_from_the_form_and_followed_to_finished(
    node: LiveServer, make: Factory, page: Page
) -> None:
    person, token = make.user_with_token(["api"])
    group, project = source_group(node, token)
    slug = uid("copy")

    signed_in(page, person["username"], PASSWORD)
    page.goto("/groups/new")
    page.get_by_role("link", name="Import group").click()
    expect(page.get_by_role("heading", name="Import group", level=1)).to_be_visible()
    assert page.evaluate(AUDIT) == []
    expect(page.get_by_label("Import projects")).to_be_checked()
    expect(page.get_by_label("Import members")).to_be_checked()
    expect(page.get_by_label("Personal access token on the source")).to_have_attribute("type", "password")

    fill(page, node.url, token, group.full_path, slug)
    expect(page.get_by_role("status")).to_contain_text(f"Migration of the group {group.full_path} started")
    assert page.url.endswith(HISTORY)
    expect(page.get_by_role("heading", name="Import history", level=1)).to_be_visible()
    assert token not in page.content()
    (created,) = imports_of(node, person["id"])
    assert created.source_url == node.url

    assert wait_in_history(page, project.path_with_namespace, {"finished", "failed"}) == "finished"
    assert wait_in_history(page, group.full_path, {"finished", "failed"}) == "finished"
    assert wait_until_ended(node, person["id"]).status == "finished"
    page.goto(HISTORY)
    assert page.evaluate(AUDIT) == []
    project_row = page.locator(f'tr[data-source-path="{project.path_with_namespace}"]')
    expect(project_row.locator("[data-entity-status]")).to_have_text("Finished")
    expect(project_row).to_contain_text("Issues 2/2")
    expect(project_row).to_contain_text("Project")
    expect(project_row.get_by_role("link", name=f"{slug}/app")).to_have_attribute("href", f"/{slug}/app")
    started = project_row.locator("time").first
    assert (started.get_attribute("title") or "").endswith(" UTC")
    group_row = page.locator(f'tr[data-source-path="{group.full_path}"]')
    expect(group_row).to_contain_text(node.url)
    expect(group_row.get_by_role("button", name="Cancel")).to_have_count(0)
    expect(page.get_by_role("link", name="See failures")).to_have_count(0)

    # The destination link leads to the copy.
    group_row.get_by_role("link", name=slug, exact=True).click()
    assert page.url.endswith(f"/groups/{slug}")
    assert node.gl(token).groups.get(slug).full_path == slug
    copied = node.gl(token).projects.get(f"{slug}/app")
    assert len(copied.issues.list(get_all=True)) == 2


def test_refusals_show_by_their_field_and_the_token_is_never_written_back(
    node: LiveServer, make: Factory, page: Page
) -> None:
    person, token = make.user_with_token(["api"])
    group, _project = source_group(node, token, issues=0)
    taken = node.gl(token).groups.create({"name": uid("Taken"), "path": uid("taken")})

    signed_in(page, person["username"], PASSWORD)
    page.goto(NEW)
    # The destination exists: GitLab's message next to the destination path.
    fill(page, node.url, token, group.full_path, taken.path)
    error = page.locator("#import-slug-error")
    expect(error).to_contain_text(f"Import aborted as '{taken.path}' already exists")
    expect(page.get_by_label("Destination path")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_role("alert")).to_contain_text("already exists")
    assert token not in page.content()
    expect(page.get_by_label("Personal access token on the source")).to_have_value("")
    expect(page.get_by_label("Source full path")).to_have_value(group.full_path)
    expect(page.get_by_label("Source instance URL")).to_have_value(node.url)
    assert page.evaluate(AUDIT) == []

    # A source path with the instance's address, and a project sent to the top level: by their
    # fields, all at once, before the source is asked.
    fill(page, node.url, token, f"{node.url}/{group.full_path}/app", uid("p"), kind="Project", namespace="")
    expect(page.locator("#import-source-error")).to_contain_text("without the instance's address")
    expect(page.locator("#import-namespace-error")).to_contain_text("a group or your personal namespace")
    assert token not in page.content()

    # A source path the source does not have: the source's refusal by that field.
    missing = f"{group.full_path}/nothing-here"
    fill(page, node.url, token, missing, uid("copy"))
    expect(page.locator("#import-source-error")).to_contain_text(
        f"The source group '{missing}' was not found"
    )
    assert token not in page.content()

    # A token the source does not accept: by the token's field.
    fill(page, node.url, "glpat-not-a-real-token-at-all", group.full_path, uid("copy"))
    expect(page.locator("#import-token-error")).to_contain_text("does not have the required 'api' scope")
    assert imports_of(node, person["id"]) == []

    # Nothing answers at the URL: by the URL.
    fill(page, "http://127.0.0.1:9", token, group.full_path, uid("copy"))
    expect(page.locator("#import-url-error")).to_contain_text("cannot be reached")
    assert token not in page.content()

    # A source on the local network while the admin does not allow it: by the URL.
    closed = node.root(
        "PUT", "/application/settings", json={"allow_local_requests_from_web_hooks_and_services": False}
    )
    assert closed.status_code == 200
    try:
        fill(page, node.url, token, group.full_path, uid("copy"))
        expect(page.locator("#import-url-error")).to_contain_text("URL is blocked:")
    finally:
        assert node.root("PUT", "/application/settings", json=SETTINGS).status_code == 200
    assert token not in page.content()
    assert imports_of(node, person["id"]) == []

    # Without the form's CSRF token: refused, nothing written.
    http = session_for(node, person["username"], PASSWORD)
    form = http.get(f"{node.url}{NEW}", timeout=30)
    body = {
        "url": node.url,
        "access_token": token,
        "source_type": "group_entity",
        "source_full_path": group.full_path,
        "destination_namespace": "",
        "destination_slug": uid("copy"),
    }
    assert http.post(f"{node.url}{NEW}", data=body, timeout=30).status_code == 403
    assert imports_of(node, person["id"]) == []
    # With it, the same form starts the migration (303 to the history).
    answer = http.post(
        f"{node.url}{NEW}",
        data=body | {"authenticity_token": csrf_of(form.text)},
        timeout=30,
        allow_redirects=False,
    )
    assert answer.status_code == 303
    assert answer.headers["location"] == HISTORY
    assert len(imports_of(node, person["id"])) == 1
    wait_until_ended(node, person["id"])


def test_a_failed_subgroup_shows_see_failures_and_its_failures_page_on_a_phone(
    node: LiveServer, make: Factory, page: Page
) -> None:
    person, token = make.user_with_token(["api"])
    gl = node.gl(token)
    top = gl.groups.create({"name": uid("Top"), "path": uid("top")})
    sub = gl.groups.create({"name": "Sub", "path": "sub", "parent_id": top.id})
    gl.projects.create({"name": "Kept", "path": "kept", "namespace_id": top.id})
    hidden = "/groups/" + quote(sub.full_path, safe="")

    def the_subgroup_is_gone(path: str) -> int | None:
        return 404 if path.split("?", 1)[0].endswith(hidden) else None

    page.set_viewport_size({"width": 390, "height": 844})
    signed_in(page, person["username"], PASSWORD)
    page.goto(NEW)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    slug = uid("partial")
    with FaultProxy(node.url, the_subgroup_is_gone) as proxy:
        fill(page, proxy.url, token, top.full_path, slug)
        expect(page.get_by_role("status")).to_contain_text("started")
        ended = wait_until_ended(node, person["id"])
    assert (ended.status, ended.has_failures) == ("finished", True)
    assert entities_of(node, ended.id)[sub.full_path] == "failed"

    page.goto(HISTORY)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    assert page.evaluate(AUDIT) == []
    row = page.locator(f'tr[data-source-path="{sub.full_path}"]')
    expect(row.locator("[data-entity-status]")).to_have_text("Failed")
    expect(page.locator(f'tr[data-source-path="{top.full_path}/kept"] [data-entity-status]')).to_have_text(
        "Finished"
    )
    # No link to a subgroup that was never made.
    expect(row.get_by_role("link", name=f"{slug}/sub")).to_have_count(0)
    row.get_by_role("link", name="See failures (1)").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Failures of {sub.full_path}")
    assert "entity_id=" in page.url
    failure = page.locator("tr[data-failure]")
    expect(failure).to_have_count(1)
    expect(failure).to_contain_text("SourceNotFound")
    expect(failure).to_contain_text("group")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    assert page.evaluate(AUDIT) == []

    # Someone else's migration is not theirs to read.
    other, _ = make.user_with_token(["api"])
    http = session_for(node, other["username"], PASSWORD)
    path = page.url.split(node.url, 1)[1]
    assert http.get(f"{node.url}{path}", timeout=30).status_code == 404


def test_cancel_stops_a_migration_held_mid_copy(node: LiveServer, make: Factory, page: Page) -> None:
    person, token = make.user_with_token(["api"])
    group, project = source_group(node, token, issues=1)
    destination = node.gl(token).groups.create({"name": uid("Dst"), "path": uid("dst")})
    asked = threading.Event()
    release = threading.Event()

    def hold_the_issues(path: str) -> int | None:
        if "/issues" in path.split("?", 1)[0]:
            asked.set()
            release.wait(30)
        return None

    signed_in(page, person["username"], PASSWORD)
    page.goto(NEW)
    with FaultProxy(node.url, hold_the_issues) as proxy:
        try:
            fill(
                page,
                proxy.url,
                token,
                project.path_with_namespace,
                "held",
                kind="Project",
                namespace=destination.full_path,
            )
            expect(page.get_by_role("status")).to_contain_text("started")
            assert asked.wait(WAIT), "the job never asked for the issues"
            (held,) = imports_of(node, person["id"])
            assert held.status == "started"
            page.goto(HISTORY)
            row = page.locator(f'tr[data-source-path="{project.path_with_namespace}"]')
            expect(row.locator("[data-entity-status]")).to_have_text("Started")
            row.get_by_role("button", name=f"Cancel migration {held.id}").click()
            expect(page.get_by_role("status")).to_contain_text(f"Migration {held.id} canceled")
            expect(row.locator("[data-entity-status]")).to_have_text("Canceled")
            expect(row.get_by_role("button", name="Cancel")).to_have_count(0)
        finally:
            release.set()
        ended = wait_until_ended(node, person["id"])
    assert (ended.status, ended.access_token_sealed) == ("canceled", None)
    assert set(entities_of(node, ended.id).values()) == {"canceled"}
    assert group.full_path in project.path_with_namespace


def test_the_pages_are_404_and_unlinked_while_the_setting_is_off(
    node: LiveServer, make: Factory, page: Page
) -> None:
    person, token = make.user_with_token(["api"])
    signed_in(page, person["username"], PASSWORD)
    page.goto("/groups/new")
    expect(page.get_by_role("link", name="Import group")).to_be_visible()
    http = session_for(node, person["username"], PASSWORD)
    form = http.get(f"{node.url}{NEW}", timeout=30)
    assert form.status_code == 200
    off = node.root("PUT", "/application/settings", json={"bulk_import_enabled": False})
    assert off.status_code == 200
    try:
        page.goto("/groups/new")
        expect(page.get_by_role("heading", name="New group", level=1)).to_be_visible()
        expect(page.get_by_role("link", name="Import group")).to_have_count(0)
        expect(page.get_by_role("link", name="Import history")).to_have_count(0)
        for path in (NEW, HISTORY, "/import/bulk_imports/1/failures?entity_id=1"):
            response = page.goto(path)
            assert response is not None
            assert response.status == 404, path
            expect(page.get_by_role("heading", level=1)).to_have_text("Page not found")
        posted = http.post(
            f"{node.url}{NEW}",
            data={"authenticity_token": csrf_of(form.text), "url": node.url, "access_token": token},
            timeout=30,
        )
        assert posted.status_code == 404
        assert imports_of(node, person["id"]) == []
    finally:
        assert node.root("PUT", "/application/settings", json=SETTINGS).status_code == 200


def test_six_attempts_a_minute_then_wait(node: LiveServer, make: Factory) -> None:
    person, token = make.user_with_token(["api"])
    taken = node.gl(token).groups.create({"name": uid("Taken"), "path": uid("taken")})
    http = session_for(node, person["username"], PASSWORD)
    csrf = csrf_of(http.get(f"{node.url}{NEW}", timeout=30).text)
    body = {
        "authenticity_token": csrf,
        "url": node.url,
        "access_token": token,
        "source_type": "group_entity",
        "source_full_path": taken.full_path,
        "destination_namespace": "",
        "destination_slug": taken.path,
    }
    answers = [http.post(f"{node.url}{NEW}", data=body, timeout=30) for _ in range(7)]
    assert [a.status_code for a in answers] == [422] * 6 + [429]
    assert "six migrations in the last minute" in answers[-1].text
    assert token not in answers[-1].text


def test_the_history_shows_twenty_migrations_a_page_newest_first(
    node: LiveServer, make: Factory, page: Page
) -> None:
    person = make.user()
    now = dt.datetime.now(dt.UTC)
    with node.runtime.sessions() as db:
        for n in range(21):
            item = BulkImport(
                user_id=person["id"],
                status="finished",
                source_type="gitlab",
                source_url="https://old.example.com",
                has_failures=False,
                created_at=now,
                updated_at=now,
            )
            db.add(item)
            db.flush()
            db.add(
                BulkImportEntity(
                    bulk_import_id=item.id,
                    status="finished",
                    entity_type="group",
                    source_full_path=f"old-{n:02d}",
                    destination_slug=f"new-{n:02d}",
                    destination_namespace="",
                    stage="done",
                    created_at=now,
                    updated_at=now,
                )
            )
        db.commit()

    signed_in(page, person["username"], PASSWORD)
    page.goto(HISTORY)
    rows = page.locator("tr[data-entity]")
    expect(rows).to_have_count(20)
    expect(rows.first).to_have_attribute("data-source-path", "old-20")
    expect(rows.last).to_have_attribute("data-source-path", "old-01")
    expect(page.get_by_role("navigation", name="Import history pages")).to_contain_text("of 21")
    page.get_by_role("link", name="Next page").click()
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-source-path", "old-00")
    expect(rows.first.locator("[data-entity-status]")).to_have_text("Finished")
    assert page.evaluate(AUDIT) == []
