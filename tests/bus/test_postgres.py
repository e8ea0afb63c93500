from __future__ import annotations

from collections.abc import Iterator

import pytest

from integration_core.bus import PostgresStore, Store
from loadtests.pg import PgServer
from tests.bus.contract import StoreContract


class TestPostgresStore(StoreContract):
    cache = False

    @pytest.fixture(autouse=True)
    def _server(self, pg_server: PgServer, pg_schema: str) -> Iterator[None]:
        self.dsn, self.schema = pg_server.dsn, pg_schema
        self.opened: list[PostgresStore] = []
        yield
        for s in self.opened:  # the contract leaves the last reopened store to us
            s.close()

    def make_store(self) -> Store:
        store = PostgresStore(self.dsn, self.schema, cache_state=self.cache)
        self.opened.append(store)
        return store

    def reopen(self, store: Store) -> Store:
        store.close()
        return self.make_store()


class TestPostgresStoreCached(TestPostgresStore):
    """The same contract with the state cache on (one writer per schema)."""

    cache = True
