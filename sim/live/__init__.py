"""Live twins of the partner systems the core calls over HTTP: an ERP and a WMS.

`create_twins_app` serves them (``twin twins``, or in process behind the core when no partner
URL is given). Their state is a SQLite file of their own, so it outlives a killed core, and
each has a fault switch (up, down, slow, flaky) a load test flips mid-run.
"""

from sim.live.app import create_twins_app
from sim.live.erp import LiveErp
from sim.live.faults import FaultSwitch, Verdict
from sim.live.wms import LiveWms

__all__ = ["FaultSwitch", "LiveErp", "LiveWms", "Verdict", "create_twins_app"]
