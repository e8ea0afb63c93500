"""loadtests.run's wiring of the fault proxies: the core started by `start_service` reaches
the ERP twin through the proxy on the ERP link, and a toxic switched on there (a reset) is
what the core's HTTP client meets. Real processes on loopback (twins, proxy, service), no
locust; about 10 s."""

from __future__ import annotations

from pathlib import Path

import httpx

from loadtests.proxy import ProxyControl, ResetPeer
from loadtests.run import link_seeds, start_service


def test_the_core_calls_the_erp_through_the_fault_proxy(tmp_path: Path) -> None:
    service = start_service(tmp_path, tmp_path, {"erp": link_seeds(0)["erp"]}, proxy_max_s=120)
    try:
        assert set(service.links) == {"erp"}  # the WMS is called directly
        control = ProxyControl(service.links["erp"])
        with httpx.Client(base_url=service.base, timeout=20.0,
                          headers={"X-API-Key": service.keys["admin"]}) as api:
            assert api.post("/v1/reconcile").status_code == 200  # reads the ERP's stock
            seen = control.stats()
            assert seen.connections >= 1 and seen.bytes_upstream > 0 < seen.bytes_downstream
            control.set(ResetPeer())
            refused = api.post("/v1/reconcile")
            assert refused.status_code == 503, refused.text  # the ERP does not answer
            control.clear()
            assert api.post("/v1/reconcile").status_code == 200
        reset = control.stats().toxics["reset_peer"]
        assert reset.fired >= 1 and reset.taken == reset.drawn
    finally:
        service.stop()
    assert "proxy 127.0.0.1:" in (tmp_path / "proxy-erp.log").read_text()
