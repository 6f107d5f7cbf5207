"""Many git requests at once: each one's child process and pipes come and go while the threadpool
runs database queries, and no request may lose a file another one holds.

This reproduces a crash found with bench/api.py: under 32 concurrent `info/refs` requests, the
event loop's pipe transports closed each pipe's fd twice (libuv, then the Popen's file object); by
the second close the number could belong to a SQLite connection in the threadpool, which then
failed with "disk I/O error" and the server aborted.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import requests

from tests.support.git import basic, repo_url
from tests.support.live import Factory, LiveServer

REQUESTS = 400
CONCURRENCY = 32


def test_concurrent_info_refs_all_succeed_and_the_server_stays_healthy(
    server: LiveServer, factory: Factory
) -> None:
    user, token = factory.user_with_token(scopes=["read_repository", "api"])
    project = factory.project(token=token, initialize_with_readme=True)
    url = repo_url(server, project["path_with_namespace"]) + "/info/refs?service=git-upload-pack"
    headers = basic(user["username"], token)
    statuses: list[int] = []

    def fetch(_: int) -> int:
        with requests.Session() as session:
            return session.get(url, headers=headers, timeout=60).status_code

    with ThreadPoolExecutor(CONCURRENCY) as pool:
        statuses = list(pool.map(fetch, range(REQUESTS)))
    assert statuses.count(200) == REQUESTS, sorted(set(statuses))
    # The database is still usable (a stolen SQLite fd fails with "disk I/O error").
    assert server.root("GET", f"/projects/{project['id']}").status_code == 200
