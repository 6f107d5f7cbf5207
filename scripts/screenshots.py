"""Screenshots of the web UI's main pages, into docs/screenshots/ (run with `make screenshots`).

Starts a throwaway keycrew on 127.0.0.1 with an empty SQLite database in a temporary directory,
fills it with a small forge (a group, a subgroup, projects, people, bots, a service account,
tokens) through the REST API, signs in as root in Debian's headless Chromium, and saves one PNG
per page. Nothing leaves this machine, and the instance (with every token shown) is deleted
afterwards.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import requests
from playwright.sync_api import Page, sync_playwright

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "screenshots"
KEYCREW = Path(sys.executable).parent / "keycrew"
PASSWORD = "screenshots-root-password"
TOKEN = "glpat-screenshots-root-token-000001"
CHROMIUM = ("/usr/lib/chromium/chromium-headless-shell", "/usr/lib/chromium/chromium")
CHROMIUM_ARGS = ["--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Forge:
    """The REST API of the throwaway instance, as root."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.http = requests.Session()
        self.http.headers["PRIVATE-TOKEN"] = TOKEN

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.http.request(method, f"{self.url}/api/v4{path}", timeout=30, **kwargs)
        if response.status_code >= 400:
            raise SystemExit(f"{method} {path}: {response.status_code} {response.text}")
        return response.json() if response.content else None


def seed(forge: Forge) -> dict[str, Any]:
    people = {
        name: forge.call(
            "POST",
            "/users",
            json={
                "username": name,
                "name": full,
                "email": f"{name}@example.com",
                "password": "a-long-password-1",
            },
        )
        for name, full in (("alice", "Alice Moreau"), ("bob", "Bob Tanaka"), ("carol", "Carol Diaz"))
    }
    group = forge.call("POST", "/groups", json={"name": "Platform", "path": "platform"})
    sub = forge.call("POST", "/groups", json={"name": "Release", "path": "release", "parent_id": group["id"]})
    project = forge.call(
        "POST",
        "/projects",
        json={
            "name": "Deployer",
            "path": "deployer",
            "namespace_id": group["id"],
            "initialize_with_readme": True,
        },
    )
    forge.call("POST", "/projects", json={"name": "Release notes", "namespace_id": sub["id"]})
    forge.call(
        "POST", f"/groups/{group['id']}/members", json={"user_id": people["alice"]["id"], "access_level": 40}
    )
    forge.call(
        "POST",
        f"/projects/{project['id']}/members",
        json={"user_id": people["bob"]["id"], "access_level": 30, "expires_at": "2027-06-30"},
    )
    soon = (dt.datetime.now(dt.UTC).date() + dt.timedelta(days=5)).isoformat()
    made_tokens = {}
    for name, scopes, level, expires in (
        ("ci-deployer", ["api", "write_repository"], 40, None),
        ("metrics", ["read_api"], 20, soon),
        ("old-exporter", ["read_api"], 20, None),
    ):
        made_tokens[name] = forge.call(
            "POST",
            f"/projects/{project['id']}/access_tokens",
            json={"name": name, "scopes": scopes, "access_level": level}
            | ({"expires_at": expires} if expires else {}),
        )
    # A revoked bot: its membership says when the daily clean-up removes it.
    forge.call("DELETE", f"/projects/{project['id']}/access_tokens/{made_tokens['old-exporter']['id']}")
    forge.call(
        "POST", f"/groups/{group['id']}/access_tokens", json={"name": "release-bot", "scopes": ["read_api"]}
    )
    account = forge.call("POST", "/service_accounts", json={"name": "Backup agent"})
    forge.call(
        "POST", f"/projects/{project['id']}/members", json={"user_id": account["id"], "access_level": 20}
    )
    forge.call(
        "POST",
        f"/users/{account['id']}/personal_access_tokens",
        json={"name": "nightly backup", "scopes": ["read_repository"]},
    )
    forge.call(
        "POST",
        f"/projects/{project['id']}/deploy_tokens",
        json={"name": "k8s pull", "scopes": ["read_repository", "read_registry"]},
    )
    forge.call(
        "POST",
        f"/projects/{project['id']}/issues",
        json={"title": "Rotate the deploy key"},
    )
    forge.call("DELETE", f"/users/{people['carol']['id']}")  # her records go to the Ghost User
    return {"group": group, "project": project, "account": account}


def shoot(page: Page, path: str, name: str, *, full: bool = True) -> None:
    page.goto(path)
    page.wait_for_load_state("networkidle")
    target = OUT / f"{name}.png"
    page.screenshot(path=str(target), full_page=full)
    print(f"  {name:<28} {path}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=1280, help="viewport width in CSS pixels (default 1280)")
    args = parser.parse_args()
    browser_path = next((p for p in CHROMIUM if Path(p).exists()), None)
    if browser_path is None:
        raise SystemExit("Debian's chromium-headless-shell is missing: `make screenshots` installs it")
    OUT.mkdir(parents=True, exist_ok=True)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="keycrew-screenshots-") as data:
        env = {k: v for k, v in os.environ.items() if not k.startswith("KEYCREW_")}
        env |= {
            "KEYCREW_DATA_DIR": data,
            "KEYCREW_INITIAL_ROOT_PASSWORD": PASSWORD,
            "KEYCREW_INITIAL_ROOT_TOKEN": TOKEN,
            "KEYCREW_LOG_LEVEL": "warning",
        }
        server = subprocess.Popen(
            [str(KEYCREW), "serve", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    if requests.get(f"{url}/-/readiness", timeout=2).status_code == 200:
                        break
                except requests.ConnectionError:
                    pass
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit("keycrew did not start")
                time.sleep(0.2)
            print(f"keycrew on {url}: seeding a small forge")
            made = seed(Forge(url))
            project, group, account = made["project"], made["group"], made["account"]
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=browser_path, args=CHROMIUM_ARGS)
                page = browser.new_context(
                    base_url=url, viewport={"width": args.width, "height": 860}
                ).new_page()
                print(f"screenshots into {OUT.relative_to(ROOT)}/")
                shoot(page, "/users/sign_in", "sign-in", full=False)
                page.get_by_label("Username or primary email").fill("root")
                page.get_by_label("Password").fill(PASSWORD)
                page.get_by_role("button", name="Sign in").click()
                page.wait_for_load_state()
                project_path, group_path = project["path_with_namespace"], group["full_path"]
                shoot(page, "/", "dashboard")
                shoot(page, f"/{project_path}/-/project_members", "project-members")
                shoot(page, f"/groups/{group_path}/-/group_members", "group-members")
                # A token made through the form, as its creator sees it: once.
                page.goto(f"/{project_path}/-/settings/access_tokens")
                page.get_by_role("button", name="Add new token").click()
                page.get_by_label("Token name").fill("release-pipeline")
                page.get_by_role("checkbox", name="read_repository", exact=True).check()
                page.get_by_role("button", name="Create project access token").click()
                page.wait_for_load_state()
                page.screenshot(path=str(OUT / "project-access-token-created.png"), full_page=True)
                print(f"  {'project-access-token-created':<28} (after the form)")
                shoot(page, f"/{project_path}/-/settings/access_tokens", "project-access-tokens")
                shoot(page, f"/groups/{group_path}/-/settings/access_tokens", "group-access-tokens")
                shoot(page, f"/{project_path}/-/settings/deploy_tokens", "project-deploy-tokens")
                shoot(page, "/-/user_settings/personal_access_tokens", "personal-access-tokens")
                shoot(page, "/-/user_settings/personal_access_tokens?new=1", "personal-access-token-form")
                shoot(page, "/groups/new", "new-group")
                shoot(page, f"/{project_path}/-/edit", "project-settings")
                shoot(page, "/-/user_settings/profile", "profile")
                shoot(page, "/admin/users", "admin-users")
                shoot(page, "/admin/users?tab=bots", "admin-users-bots")
                shoot(page, "/admin/users/alice", "admin-user")
                shoot(page, "/admin/service_accounts", "admin-service-accounts")
                shoot(page, f"/admin/service_accounts/{account['id']}", "admin-service-account")
                shoot(page, "/admin/seats", "admin-seats")
                shoot(page, "/admin/audit_events", "admin-audit-events")
                shoot(page, "/admin/credentials", "admin-credentials")
                shoot(page, "/admin/background_jobs", "admin-background-jobs")
                shoot(page, "/admin/application_settings", "admin-settings")
                # The same pages on a phone (390 px): the menus folded, tables as cards.
                page.set_viewport_size({"width": 390, "height": 844})
                shoot(page, "/", "phone-dashboard", full=False)
                page.get_by_role("button", name="Menu", exact=True).click()
                page.screenshot(path=str(OUT / "phone-menu.png"))
                print(f"  {'phone-menu':<28} (the top bar's Menu, open)")
                shoot(page, f"/{project_path}/-/settings/access_tokens", "phone-project-access-tokens")
                page.locator(".sidebar [data-menu-toggle]").click()
                page.screenshot(path=str(OUT / "phone-sidebar-menu.png"))
                print(f"  {'phone-sidebar-menu':<28} (the project's sidebar, open)")
                shoot(page, f"/{project_path}/-/project_members", "phone-project-members")
                shoot(page, "/admin/users", "phone-admin-users")
                browser.close()
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=20)
    print("done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
