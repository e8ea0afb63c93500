"""Settings of the live service: a pydantic model, filled from arguments and the environment.

API keys come from the environment (``TWIN_API_KEY_<SYSTEM>``) or from the caller, never from
a file in the repository. They are `SecretStr`: their repr and any dump print ``**********``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from integration_core.bus import RetryPolicy
from integration_core.models import Catalog, Item, UnitConversion
from integration_core.service.limits import JsonLimits

System = Literal["shop", "wms", "erp", "carrier", "admin", "viewer"]
SYSTEMS: tuple[System, ...] = ("shop", "wms", "erp", "carrier", "admin", "viewer")

#: Every scope the API checks. A key holds a subset; admin holds them all.
SCOPES: tuple[str, ...] = (
    "audit:read",
    "dashboard:read",
    "dead_letters:read",
    "dead_letters:write",
    "edi:write",
    "faults:write",
    "inventory:read",
    "milestones:write",
    "movements:write",
    "orders:read",
    "orders:write",
    "reconcile:write",
    "shipments:write",
)

#: What each calling system may do unless configured otherwise: the WMS posts movements and
#: shipment confirmations but no orders; the shop places and reads orders; and so on.
DEFAULT_SCOPES: dict[System, frozenset[str]] = {
    "shop": frozenset({"orders:write", "orders:read"}),
    # edi:write: POST /v1/edi/x12, the 3PL's X12 (which can carry 940 orders too).
    "wms": frozenset({"movements:write", "shipments:write", "inventory:read", "edi:write"}),
    "erp": frozenset({"inventory:read", "orders:read", "audit:read"}),
    "carrier": frozenset({"milestones:write"}),
    "admin": frozenset(SCOPES),
    # A person looking at /dashboard: reads its snapshots, can change nothing (requeueing
    # from the page needs the admin key's dead_letters:write).
    "viewer": frozenset({"dashboard:read"}),
}


class ApiKey(BaseModel):
    """One calling system's key, what it may do and how fast."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    system: System
    key: SecretStr = Field(description="The secret the caller sends; at least 16 characters.")
    scopes: frozenset[str] = Field(description="Scopes granted, see SCOPES.")
    rate_per_s: Annotated[float, Field(gt=0)] = Field(
        1000.0, description="Sustained requests per second (token bucket refill rate)."
    )
    burst: Annotated[int, Field(ge=1)] = Field(2000, description="Bucket size: requests "
                                                                 "allowed at once.")

    @model_validator(mode="after")
    def _check(self) -> ApiKey:
        if len(self.key.get_secret_value()) < 16:
            raise ValueError(f"key of {self.system}: at least 16 characters are required")
        unknown = sorted(self.scopes - set(SCOPES))
        if unknown:
            raise ValueError(f"scopes of {self.system}: unknown {unknown}; known: {list(SCOPES)}")
        return self


class Settings(BaseModel):
    """Everything `create_app` needs. `Settings.from_env` reads ``TWIN_*`` variables."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    db: Path = Field(Path("twin.db"), description="SQLite file holding all durable state "
                     "(unless `store` names a PostgreSQL database).")
    store: SecretStr | None = Field(
        None, description="PostgreSQL URL (postgresql://user:password@host:port/dbname) of "
        "the durable state: the bus and the idempotency records, in schema `store_schema`. "
        "Unset: the SQLite file `db`. Secret: it may hold a password.")
    store_schema: Annotated[str, Field(min_length=1, max_length=63)] = Field(
        "interop_twin", description="PostgreSQL schema of the service's tables (created if "
        "missing); one service instance per schema, unless each has an `instance_id`.")
    instance_id: Annotated[str, Field(min_length=1, max_length=100,
                                      pattern=r"^[A-Za-z0-9._:-]+$")] | None = Field(
        None, description="With `store`: this instance's id among several sharing "
        "`store_schema` (unique among them; a restarted instance may keep its id). They "
        "split the ordering keys' partitions by lease; any of them accepts posts. Unset: "
        "one instance per schema (a second is refused).")
    lease_ttl_s: Annotated[float, Field(ge=0.5, le=300)] = Field(
        5.0, description="With `instance_id`: how long a partition's lease lasts without "
        "renewal (renewed every third of it): an instance that died is taken over after "
        "about this plus a third.")
    synchronous: Literal["NORMAL", "FULL"] = Field(
        "NORMAL", description="SQLite synchronous level: NORMAL survives a killed process, "
        "FULL also an OS crash or power loss (one fsync per commit).",
    )
    keys: tuple[ApiKey, ...] = Field(min_length=1, description="One key per calling system.")
    batch_max: Annotated[int, Field(ge=1, le=10_000)] = Field(
        1000, description="Most movements one POST /v1/movements:batch may carry."
    )
    checkpoint_interval_s: Annotated[float, Field(ge=0, le=60)] = Field(
        0.2, description="Interval of the WAL checkpoints a background thread runs, so "
        "commits on the event loop never wait for one; 0: SQLite checkpoints inside the "
        "commits (its default).")
    deliver_batch: Annotated[int, Field(ge=1)] = Field(
        250, description="Most deliveries handled in one bus transaction."
    )
    coalesce_s: Annotated[float, Field(ge=0, le=1)] = Field(
        0.002, description="After a wake-up, wait this long so one transaction carries "
        "several messages.",
    )
    idle_poll_s: Annotated[float, Field(gt=0)] = Field(
        1.0, description="Longest the delivery loop sleeps when nothing is due."
    )
    reconcile_interval_s: Annotated[float, Field(gt=0)] = Field(
        30.0, description="Interval of the background reconciliation."
    )
    repair_after_s: Annotated[float, Field(ge=0)] | None = Field(
        None, description="Carry out the reconciler's ERP adjustments once their break has "
        "persisted unchanged this long (seconds); unset: breaks and repairs are reported only.",
    )
    retry_max_attempts: Annotated[int, Field(ge=1)] = 8
    retry_initial_delay_s: Annotated[float, Field(ge=0)] = 0.5
    retry_max_delay_s: Annotated[float, Field(ge=0)] = 30.0
    seed: int = Field(0, description="Seed of the retry jitter.")
    catalog_skus: Annotated[int, Field(ge=1)] = Field(
        1000, description="Size of the generated item master SKU-00000, SKU-00001, ... "
        "(EA base unit; CS = 12 EA) when no catalog file is given.",
    )
    catalog_file: Path | None = Field(
        None, description="JSON list of canonical Items: the item master to validate against."
    )
    erp_url: str = Field("http://twins/erp", description="Base URL of the ERP the core posts "
                         "movements, credit checks and invoices to (`twin twins` serves one).")
    wms_url: str = Field("http://twins/wms", description="Base URL of the WMS the core "
                         "releases orders to.")
    partner_key: SecretStr = Field(SecretStr(""), description="Sent to the partners as "
                                   "X-Partner-Key.")
    partner_timeout_s: Annotated[float, Field(gt=0)] = Field(
        5.0, description="Timeout of one call to a partner; a timed-out call is retried.")
    intake_workers: Annotated[int, Field(ge=0, le=64)] = Field(
        1, description="Processes that parse and validate movement batches off the event "
        "loop (0: in the loop).")
    erp_batch: Annotated[int, Field(ge=1, le=10_000)] = Field(
        500, description="Most movements posted to the ERP in one call.")
    erp_concurrency: Annotated[int, Field(ge=1, le=64)] = Field(
        2, description="ERP posting calls in flight at once (ordering keys never overlap).")
    call_concurrency: Annotated[int, Field(ge=1, le=256)] = Field(
        8, description="Outbox calls (credit checks, releases, invoices) in flight at once.")
    # Limits on request bodies, checked before they are parsed (413, 415 or 422 problems).
    max_body_bytes: Annotated[int, Field(ge=1024)] = Field(
        1 << 20, description="Largest request body in bytes (1 MiB), except for "
        "POST /v1/movements:batch. These bodies are parsed on the event loop.")
    max_batch_body_bytes: Annotated[int, Field(ge=1024)] | None = Field(
        None, description="Largest body of POST /v1/movements:batch in bytes; null: 4 KiB "
        "per movement of batch_max (4 MiB for 1,000). Batches are parsed in the intake "
        "workers.")
    max_json_depth: Annotated[int, Field(ge=4, le=256)] = Field(
        32, description="Deepest nesting of arrays and objects in a body (a batch needs 4); "
        "at most 256, far from the parser's recursion limit.")
    max_json_elements: Annotated[int, Field(ge=100)] = Field(
        100_000, description="Most JSON values in one body (a movement has about 10).")
    max_number_chars: Annotated[int, Field(ge=16, le=1000)] = Field(
        40, description="Longest JSON number literal. Numeric strings (quantities, prices) "
        "follow the canonical models' own rule: 40 characters, exponent within 40.")
    max_number_exponent: Annotated[int, Field(ge=1, le=300)] = Field(
        40, description="Largest exponent a JSON number literal may write, either sign.")
    max_edi_bytes: Annotated[int, Field(ge=1024)] = Field(
        16 << 20, description="Largest X12 interchange (16 MiB): the body of POST "
        "/v1/edi/x12, refused before it is parsed.")
    edi_3pl_url: str | None = Field(
        None, description="Base URL of an EDI 3PL (`sim.live` serves one at .../3pl): when "
        "set, the order desk's releases go there as X12 940s (POST <url>/x12), answered "
        "with a 997, and the 3PL confirms its shipments with 945s on POST /v1/edi/x12; every "
        "other WMS call still goes to wms_url. Unset: releases go to wms_url as JSON.")
    edi_sender_id: Annotated[str, Field(min_length=1, max_length=15, pattern=r"^[A-Z0-9]+$")
                             ] = Field("TWIN", description="Our ISA06 / GS02 (qualifier ZZ) "
                                       "on the interchanges we send.")
    edi_3pl_id: Annotated[str, Field(min_length=1, max_length=15, pattern=r"^[A-Z0-9]+$")
                          ] = Field("THREEPL", description="The EDI 3PL's ISA08 / GS03 "
                                    "(qualifier ZZ).")
    feed_dir: Path | None = Field(
        None, description="Drop folder of the file feed (X12 files and CSV movement files, "
        "docs/edi.md); processed/ and failed/ are made inside it. Unset: no file feed.")
    feed_poll_s: Annotated[float, Field(gt=0, le=3600)] = Field(
        1.0, description="Interval at which the drop folder is looked at.")
    feed_max_bytes: Annotated[int, Field(ge=1024)] = Field(
        64 << 20, description="Largest CSV file of the feed (64 MiB), refused before it is "
        "read; an X12 file's limit is max_edi_bytes.")
    feed_max_rows: Annotated[int, Field(ge=1)] = Field(
        1_000_000, description="Most rows of one CSV file, counted before it is parsed.")
    feed_chunk_rows: Annotated[int, Field(ge=1, le=100_000)] = Field(
        1000, description="Rows of a CSV file published in one transaction.")
    feed_source: Literal["wms", "erp", "shop", "carrier"] = Field(
        "wms", description="The system the feed's messages are published as (who drops "
        "the files).")

    @model_validator(mode="after")
    def _unique(self) -> Settings:
        systems = [k.system for k in self.keys]
        if len(set(systems)) != len(systems):
            raise ValueError(f"keys: one key per system, got {systems}")
        secrets = [k.key.get_secret_value() for k in self.keys]
        if len(set(secrets)) != len(secrets):
            raise ValueError("keys: two systems share a key")
        return self

    @model_validator(mode="after")
    def _store_url(self) -> Settings:
        if self.store is not None:
            url = self.store.get_secret_value()
            if not url.startswith(("postgresql://", "postgres://")):
                raise ValueError("store: a PostgreSQL URL, postgresql://user@host:port/dbname "
                                 "(unset for the SQLite file `db`)")
        if self.instance_id is not None and self.store is None:
            raise ValueError("instance_id: several instances share a PostgreSQL schema; "
                             "give `store` too")
        return self

    @property
    def postgres_url(self) -> str | None:
        """The PostgreSQL URL of the durable state, or None on SQLite."""
        return None if self.store is None else self.store.get_secret_value()

    @property
    def store_label(self) -> str:
        """Where the durable state is, for a log line: the SQLite path, or the PostgreSQL
        URL without its password."""
        url = self.postgres_url
        if url is None:
            return f"SQLite {self.db}"
        scheme, _, rest = url.partition("://")
        creds, at, where = rest.rpartition("@")
        if at and ":" in creds:
            creds = creds.split(":", 1)[0] + ":***"
        return f"PostgreSQL {scheme}://{creds}{at}{where} schema {self.store_schema}"

    @property
    def batch_body_limit(self) -> int:
        if self.max_batch_body_bytes is not None:
            return self.max_batch_body_bytes
        return 4096 * self.batch_max

    def json_limits(self) -> JsonLimits:
        return JsonLimits(max_depth=self.max_json_depth, max_elements=self.max_json_elements,
                          max_number_chars=self.max_number_chars,
                          max_exponent=self.max_number_exponent)

    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(
            max_attempts=self.retry_max_attempts,
            initial_delay=self.retry_initial_delay_s,
            max_delay=self.retry_max_delay_s,
        )

    def catalog(self) -> Catalog:
        if self.catalog_file is not None:
            items = json.loads(self.catalog_file.read_text())
            return Catalog(Item.model_validate(i) for i in items)
        case = (UnitConversion(unit="CS", factor=12),)
        return Catalog(
            Item(sku=f"SKU-{i:05d}", conversions=case, unit_value=1)
            for i in range(self.catalog_skus)
        )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Settings from ``TWIN_*`` variables, then `overrides` (command-line arguments).

        ``TWIN_API_KEY_<SYSTEM>``: the key of shop, wms, erp, carrier, admin or viewer (a
        system without one cannot call; viewer: the read-only dashboard key);
        ``TWIN_RATE_<SYSTEM>``: its requests per second (burst is twice that); ``TWIN_DB``,
        ``TWIN_SYNCHRONOUS``, ``TWIN_BATCH_MAX``,
        ``TWIN_RECONCILE_INTERVAL_S``, ``TWIN_CATALOG_SKUS``, ``TWIN_CATALOG_FILE``,
        ``TWIN_ERP_URL``, ``TWIN_WMS_URL``, ``TWIN_PARTNER_KEY``, ``TWIN_INTAKE_WORKERS``,
        ``TWIN_CHECKPOINT_INTERVAL_S``, ``TWIN_MAX_BODY_BYTES``, ``TWIN_MAX_BATCH_BODY_BYTES``,
        ``TWIN_MAX_JSON_DEPTH``, ``TWIN_MAX_JSON_ELEMENTS``, ``TWIN_MAX_NUMBER_CHARS``,
        ``TWIN_MAX_NUMBER_EXPONENT``, ``TWIN_REPAIR_AFTER_S``, ``TWIN_STORE`` (a PostgreSQL URL),
        ``TWIN_STORE_SCHEMA``, ``TWIN_MAX_EDI_BYTES``, ``TWIN_FEED_DIR``,
        ``TWIN_FEED_POLL_S``, ``TWIN_EDI_3PL_URL``."""
        env = os.environ if environ is None else environ
        keys = []
        for system in SYSTEMS:
            secret = env.get(f"TWIN_API_KEY_{system.upper()}")
            if not secret:
                continue
            rate = float(env.get(f"TWIN_RATE_{system.upper()}", "1000"))
            keys.append(ApiKey(system=system, key=SecretStr(secret),
                               scopes=DEFAULT_SCOPES[system], rate_per_s=rate,
                               burst=max(1, int(2 * rate))))
        if not keys and "keys" not in overrides:
            names = ", ".join(f"TWIN_API_KEY_{s.upper()}" for s in SYSTEMS)
            raise ValueError(f"no API keys: set at least one of {names}")
        fields: dict[str, Any] = {"keys": tuple(keys)}
        for name in ("db", "synchronous", "batch_max", "reconcile_interval_s", "catalog_skus",
                     "catalog_file", "erp_url", "wms_url", "partner_key", "intake_workers",
                     "checkpoint_interval_s", "max_body_bytes", "max_batch_body_bytes",
                     "max_json_depth", "max_json_elements", "max_number_chars",
                     "max_number_exponent", "repair_after_s", "store", "store_schema",
                     "instance_id", "lease_ttl_s",
                     "max_edi_bytes", "feed_dir", "feed_poll_s", "edi_3pl_url"):
            value = env.get(f"TWIN_{name.upper()}")
            if value:
                fields[name] = value
        fields.update({k: v for k, v in overrides.items() if v is not None})
        return cls.model_validate(fields)
