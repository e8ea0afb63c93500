"""Prometheus text exposition format (version 0.0.4), written by hand: counters, gauges and
histograms with labels. Request metrics are recorded as requests finish; bus, lag and
divergence gauges are read when /metrics is scraped.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS: tuple[float, ...] = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)

Labels = tuple[tuple[str, str], ...]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(labels: Labels, extra: Labels = ()) -> str:
    pairs = labels + extra
    if not pairs:
        return ""
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in pairs) + "}"


def _num(v: float) -> str:
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    if math.isnan(v):
        return "NaN"
    return repr(float(v)) if not float(v).is_integer() else str(int(v))


@dataclass
class _Histogram:
    buckets: tuple[float, ...]
    counts: list[int] = field(default_factory=list)
    total: float = 0.0
    n: int = 0

    def __post_init__(self) -> None:
        self.counts = [0] * len(self.buckets)

    def observe(self, value: float) -> None:
        i = bisect.bisect_left(self.buckets, value)
        if i < len(self.counts):
            self.counts[i] += 1
        self.total += value
        self.n += 1


@dataclass
class Family:
    name: str
    kind: str
    help: str


class Registry:
    """Counters and histograms kept here; gauges passed in at render time."""

    def __init__(self, buckets: tuple[float, ...] = LATENCY_BUCKETS) -> None:
        self.buckets = buckets
        self._families: dict[str, Family] = {}
        self._counters: dict[str, dict[Labels, float]] = {}
        self._hists: dict[str, dict[Labels, _Histogram]] = {}

    def counter(self, name: str, help: str) -> None:
        self._families[name] = Family(name, "counter", help)
        self._counters.setdefault(name, {})

    def histogram(self, name: str, help: str) -> None:
        self._families[name] = Family(name, "histogram", help)
        self._hists.setdefault(name, {})

    def inc(self, name: str, labels: Labels = (), by: float = 1.0) -> None:
        series = self._counters[name]
        series[labels] = series.get(labels, 0.0) + by

    def observe(self, name: str, labels: Labels, value: float) -> None:
        series = self._hists[name]
        h = series.get(labels)
        if h is None:
            h = series[labels] = _Histogram(self.buckets)
        h.observe(value)

    def render(self, gauges: Iterable[tuple[str, str, Mapping[Labels, float]]] = (),
               counters: Iterable[tuple[str, str, Mapping[Labels, float]]] = ()) -> str:
        """The exposition text; `gauges` / `counters` are (name, help, {labels: value})
        read at scrape time."""
        lines: list[str] = []
        for fam in self._families.values():
            lines += [f"# HELP {fam.name} {fam.help}", f"# TYPE {fam.name} {fam.kind}"]
            if fam.kind == "counter":
                for labels, v in sorted(self._counters[fam.name].items()):
                    lines.append(f"{fam.name}{_labels(labels)} {_num(v)}")
            else:
                for labels, h in sorted(self._hists[fam.name].items()):
                    cum = 0
                    for le, c in zip(self.buckets, h.counts, strict=True):
                        cum += c
                        lines.append(f"{fam.name}_bucket{_labels(labels, (('le', _num(le)),))}"
                                     f" {cum}")
                    lines.append(f"{fam.name}_bucket{_labels(labels, (('le', '+Inf'),))} {h.n}")
                    lines.append(f"{fam.name}_sum{_labels(labels)} {_num(h.total)}")
                    lines.append(f"{fam.name}_count{_labels(labels)} {h.n}")
        for kind, families in (("counter", counters), ("gauge", gauges)):
            for name, help, series in families:
                lines += [f"# HELP {name} {help}", f"# TYPE {name} {kind}"]
                for labels, v in sorted(series.items()):
                    lines.append(f"{name}{_labels(labels)} {_num(v)}")
        return "\n".join(lines) + "\n"
