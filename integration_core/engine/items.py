"""Item masters per site: a warehouse with an item master of its own (a 3PL's) knows an item
only once master data has reached it.

The core maps a site's movements to the ERP's items through that site's master: a movement of
an item the site does not know yet cannot be mapped. It is dead-lettered (not retried: time
alone does not help) with the item and the site as its cause, and replayed once the item
reaches the site (`Engine.item_arrived`). Sites not listed share the ERP's master.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping


class SiteItems:
    def __init__(self, known: Mapping[str, Iterable[str]]) -> None:
        """`known`: per site with an item master of its own, the SKUs it holds now."""
        self._known = {site: set(skus) for site, skus in known.items()}

    @property
    def sites(self) -> list[str]:
        return sorted(self._known)

    def maps(self, sku: str, location: str) -> bool:
        """Whether a movement of `sku` at `location` can be mapped to the ERP's item."""
        known = self._known.get(location)
        return known is None or sku in known

    def arrived(self, sku: str, location: str) -> bool:
        """The item reached the site's master; True if the site did not know it before."""
        known = self._known.get(location)
        if known is None or sku in known:
            return False
        known.add(sku)
        return True
