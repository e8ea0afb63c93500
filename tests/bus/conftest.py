"""The bus tests' throwaway PostgreSQL (`pg_server`, `pg_schema`) is in tests/conftest.py,
shared with the service's tests on PostgreSQL."""
