"""Settings from the environment; keys stay secret."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from integration_core.service import Settings


def test_from_env_reads_keys_rates_and_paths(tmp_path: Path) -> None:
    env = {"TWIN_API_KEY_WMS": "w" * 20, "TWIN_API_KEY_ADMIN": "a" * 20, "TWIN_RATE_WMS": "50",
           "TWIN_DB": str(tmp_path / "x.db"), "TWIN_BATCH_MAX": "250",
           "TWIN_CHECKPOINT_INTERVAL_S": "0"}
    s = Settings.from_env(env, synchronous="FULL")
    assert s.checkpoint_interval_s == 0
    assert [k.system for k in s.keys] == ["wms", "admin"]
    wms = s.keys[0]
    assert (wms.rate_per_s, wms.burst) == (50.0, 100)
    assert "movements:write" in wms.scopes and "orders:write" not in wms.scopes
    assert (s.db, s.batch_max, s.synchronous) == (tmp_path / "x.db", 250, "FULL")
    assert "w" * 20 not in repr(s) and "w" * 20 not in s.model_dump_json()


def test_settings_refuse_missing_short_or_shared_keys() -> None:
    with pytest.raises(ValueError, match="TWIN_API_KEY_WMS"):
        Settings.from_env({})
    with pytest.raises(ValidationError, match="at least 16 characters"):
        Settings.from_env({"TWIN_API_KEY_SHOP": "short"})
    with pytest.raises(ValidationError, match="share a key"):
        Settings.from_env({"TWIN_API_KEY_SHOP": "s" * 20, "TWIN_API_KEY_WMS": "s" * 20})


def test_generated_catalog_has_a_case_unit() -> None:
    s = Settings.from_env({"TWIN_API_KEY_ADMIN": "a" * 20, "TWIN_CATALOG_SKUS": "3"})
    cat = s.catalog()
    assert sorted(cat.items) == ["SKU-00000", "SKU-00001", "SKU-00002"]
    assert cat.item("SKU-00002").to_base(2, "CS") == 24


@pytest.mark.parametrize(("name", "value"), [("TWIN_CHECKPOINT_INTERVAL_S", "-1"),
                                             ("TWIN_CHECKPOINT_INTERVAL_S", "soon"),
                                             ("TWIN_INTAKE_WORKERS", "-2")])
def test_bad_tuning_values_name_the_setting(name: str, value: str) -> None:
    field = name.removeprefix("TWIN_").lower()
    with pytest.raises(ValidationError, match=field):
        Settings.from_env({"TWIN_API_KEY_ADMIN": "a" * 20, name: value})


def test_body_limits_from_env_with_documented_defaults() -> None:
    s = Settings.from_env({"TWIN_API_KEY_ADMIN": "a" * 20})
    assert (s.max_body_bytes, s.batch_body_limit) == (1 << 20, 4096 * 1000)
    assert (s.max_json_depth, s.max_json_elements, s.max_number_chars,
            s.max_number_exponent) == (32, 100_000, 40, 40)
    env = {"TWIN_API_KEY_ADMIN": "a" * 20, "TWIN_MAX_BODY_BYTES": "65536",
           "TWIN_MAX_BATCH_BODY_BYTES": "2097152", "TWIN_MAX_JSON_DEPTH": "8",
           "TWIN_MAX_JSON_ELEMENTS": "5000", "TWIN_MAX_NUMBER_CHARS": "20",
           "TWIN_MAX_NUMBER_EXPONENT": "12"}
    s = Settings.from_env(env)
    assert (s.max_body_bytes, s.batch_body_limit) == (65536, 2097152)
    limits = s.json_limits()
    assert (limits.max_depth, limits.max_elements, limits.max_number_chars,
            limits.max_exponent) == (8, 5000, 20, 12)
    with pytest.raises(ValidationError, match="max_json_depth"):
        Settings.from_env({**env, "TWIN_MAX_JSON_DEPTH": "5000"})  # past the parser's reach
