"""Test-wide settings. Under CI, hypothesis runs derandomized: the same examples every run, so
a red CI is reproducible (locally it explores fresh examples each run).

A throwaway PostgreSQL (loadtests/pg.py), one per session, for every test that asks for
`pg_server` (the bus store's and the service's on PostgreSQL). Without PostgreSQL's binaries
those tests skip, saying why; with ``INTEROP_REQUIRE_PG=1`` (CI) they fail instead, so a
missing install cannot pass as green.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator

import pytest
from hypothesis import settings

from loadtests.pg import PgServer, find_bin_dir

settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
settings.register_profile("dev", deadline=None, print_blob=True)
settings.load_profile("ci" if os.environ.get("CI") else "dev")

_names = itertools.count()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    if find_bin_dir() is None:
        why = (
            "no PostgreSQL server binaries under /usr/lib/postgresql/*/bin "
            "(apt-get install postgresql)"
        )
        if os.environ.get("INTEROP_REQUIRE_PG") == "1":
            pytest.fail(f"INTEROP_REQUIRE_PG=1 but {why}")
        pytest.skip(why)
    server = PgServer()
    try:
        server.init()
        server.start()
        yield server
    finally:
        server.remove()


@pytest.fixture
def pg_schema() -> str:
    """A schema of its own for each test: tests share the server, not the tables."""
    return f"t{os.getpid()}_{next(_names)}"
