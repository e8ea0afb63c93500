"""SimPy digital twin of ERP, WMS, carrier and shop; drives `integration_core` in virtual time."""

__all__: list[str] = []
