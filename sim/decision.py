"""The verdict of a comparison or a sweep: which design to pick and why, in a few lines.

Each option (a scenario of `twin compare`, a configuration of `twin sweep`) is judged on
- its SLOs: met in every run, or missed (and how);
- damage: what someone must fix at the end (`damage` KPI: stock units unexplained, orders
  stuck, dead letters left; lost, duplicated and given-up movements show in the units);
- latency: inventory sync p95 (stock seen by the ERP), and cost: partner API calls.

The Pareto set holds the options no other beats on all three of damage, latency and cost at
once. The pick is the best by the ranking KPI among the options that meet every SLO (all of
them when none does, fewest misses first), Pareto members first. With replications the
ranking carries confidence intervals (`sim.stats`): ties are ties, and fewer than 3 runs give
no interval.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sim.kpis import KPIS, flatten
from sim.stats import Estimate, Ranking, estimate, fmt, rank

PARETO = ("damage", "inventory_sync_p95_s", "api_calls")
"""The criteria of the Pareto set, all lower-is-better: damage, latency, cost."""
DEFAULT_KPI = "damage"


@dataclass(frozen=True)
class Option:
    name: str
    kpis: dict[str, Estimate]
    """Every KPI over the option's successful runs."""
    slos: dict[str, tuple[int, int]]
    """SLO name -> (runs that met it, runs)."""
    misses: dict[str, str] = field(default_factory=dict)
    """SLO name -> how it was missed (in the first run that missed it)."""

    def value(self, kpi: str) -> float:
        e = self.kpis.get(kpi)
        return math.nan if e is None or e.n == 0 else e.mean

    @property
    def runs(self) -> int:
        return max((e.n + e.missing for e in self.kpis.values()), default=0)

    @property
    def missed(self) -> list[str]:
        return [name for name, (met, runs) in self.slos.items() if met < runs]


def option_from_summaries(name: str, summaries: Sequence[Mapping[str, Any]],
                          measure: Any = None) -> Option:
    """One option from the `sim.metrics.summary` of each of its runs; `measure(slo)` words
    how an SLO was missed (`sim.report.slo_measure`)."""
    flat = [flatten(dict(s)) for s in summaries]
    kpis = {k: estimate([f[k] for f in flat]) for k in KPIS}
    slos: dict[str, tuple[int, int]] = {}
    misses: dict[str, str] = {}
    for s in summaries:
        for x in s["slos"]:
            met, runs = slos.get(x["name"], (0, 0))
            slos[x["name"]] = (met + bool(x["met"]), runs + 1)
            if not x["met"] and x["name"] not in misses and measure is not None:
                misses[x["name"]] = measure(x)
    return Option(name, kpis, slos, misses)


def pareto_set(options: Sequence[Option], criteria: Sequence[str] = PARETO) -> list[str]:
    """Names of the options no other is at least as good as on every criterion and better on
    one (undefined values count as worst)."""
    def vec(o: Option) -> tuple[float, ...]:
        return tuple(math.inf if math.isnan(v := o.value(c)) else v for c in criteria)

    vecs = {o.name: vec(o) for o in options}
    return [a for a, va in vecs.items()
            if not any(vb != va and all(x <= y for x, y in zip(vb, va, strict=True))
                       for b, vb in vecs.items() if b != a)]


@dataclass(frozen=True)
class Decision:
    options: tuple[Option, ...]
    kpi: str
    ranking: Ranking
    pareto: tuple[str, ...]
    pick: str
    meets_all: tuple[str, ...]
    sentences: tuple[str, ...]
    notes: tuple[str, ...] = ()

    def option(self, name: str) -> Option:
        return next(o for o in self.options if o.name == name)


def decide(options: Sequence[Option], kpi: str = DEFAULT_KPI,
           notes: Sequence[str] = ()) -> Decision:
    if not options:
        raise ValueError("nothing to decide between")
    sense = KPIS[kpi].lower_is_better
    ranking = rank({o.name: o.kpis[kpi] for o in options}, kpi, sense)
    pareto = pareto_set(options)
    meets = [o.name for o in options if not o.missed]
    pos = {e.id: e.rank for e in ranking.entries}

    def preference(o: Option) -> tuple[Any, ...]:
        return (len(o.missed), o.name not in pareto, pos[o.name],
                *(_worst(o.value(c)) for c in PARETO), o.name)

    pick = min(options, key=preference)
    sentences = [_why_pick(pick, options, meets, ranking)]
    sentences += [_why_not(o, pick) for o in options if o is not pick]
    return Decision(tuple(options), kpi, ranking, tuple(pareto), pick.name, tuple(meets),
                    tuple(sentences), tuple(notes))


def _worst(v: float) -> float:
    return math.inf if math.isnan(v) else v


def _n(v: float) -> str:
    return fmt(v) if not math.isnan(v) else "-"


def _damage_words(o: Option) -> list[str]:
    def v(kpi: str) -> float:
        x = o.value(kpi)
        return 0.0 if math.isnan(x) else x

    parts = []
    for kpi, words in (("updates_given_up", "gave up {} updates"),
                       ("unexplained_final_units", "left {} units unexplained"),
                       ("duplicated", "applied {} movements twice"),
                       ("orders_stuck", "left {} orders stuck")):
        if v(kpi) > 0:
            parts.append(words.format(fmt(v(kpi))))
    dead, lost = v("dead_letters_left"), v("lost")
    if dead > 0:  # a dead letter nobody redrives is an acknowledged movement never applied
        parts.append(f"left {fmt(dead)} dead letters nobody redrove")
    if lost > dead:
        parts.append(f"lost {fmt(lost - dead)} acknowledged movements"
                     + (" besides" if dead else ""))
    return parts


def _recovery(o: Option) -> str | None:
    e = o.kpis.get("time_to_consistency_s")
    if e is None:
        return None
    if e.n == 0 and e.missing:
        return "never got stock consistent again after the faults"
    if e.n and e.mean > 0:
        return f"got stock consistent {_duration(e.mean)} after the last fault"
    return None


def _duration(s: float) -> str:
    if s >= 5400:
        return f"{s / 3600:.1f} h"
    if s >= 90:
        return f"{s / 60:.0f} min"
    return f"{s:.0f} s"


def _joined(parts: Sequence[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def _why_pick(pick: Option, options: Sequence[Option], meets: Sequence[str],
              ranking: Ranking) -> str:
    slos = len(pick.slos)
    mean = " (means over runs)" if pick.runs > 1 else ""
    if not slos:
        head = f"Pick {pick.name}: no SLOs are declared, so it is the best by {ranking.kpi}"
    elif not pick.missed:
        others = [m for m in meets if m != pick.name]
        head = (f"Pick {pick.name}: it meets all {slos} SLOs"
                + (f" (so do {', '.join(others)})" if others else " (no other option does)"))
    else:
        head = (f"No option meets every SLO; {pick.name} misses the fewest "
                f"({len(pick.missed)} of {slos}: {', '.join(pick.missed)})")
    damage = _damage_words(pick)
    what = _joined(damage) if damage else "leaves nothing to fix"
    tail = (f"; it {what}, syncs stock in {_n(pick.value('inventory_sync_p95_s'))} s (p95) "
            f"and makes {_n(pick.value('api_calls'))} API calls{mean}.")
    return head + tail


def _why_not(o: Option, pick: Option) -> str:
    reasons = _damage_words(o)
    rec = _recovery(o)
    if o.missed:
        how = "; ".join(f"{m}: {o.misses[m]}" if m in o.misses else m for m in o.missed)
        lead = f"{o.name} misses {len(o.missed)} of {len(o.slos)} SLOs ({how})"
    else:
        lead = f"{o.name} meets its SLOs"
    if reasons:
        lead += f"; it {_joined(reasons)}"
    elif not o.missed:
        better = [label for c, label in zip(PARETO, ("damage", "latency", "API calls"),
                                            strict=True)
                  if _worst(pick.value(c)) < _worst(o.value(c))]
        lead += (f" but {pick.name} does better on {_joined(better)}" if better
                 else f" and does as well as {pick.name}")
    if rec:
        lead += f"; it {rec}"
    return lead + "."


# -- output ------------------------------------------------------------------------------------

COLUMNS = (("SLOs", None), ("damage", "damage"), ("unexpl.", "unexplained_final_units"),
           ("given up", "updates_given_up"), ("stuck", "orders_stuck"),
           ("dead", "dead_letters_left"), ("sync p95 s", "inventory_sync_p95_s"),
           ("ship p95 s", "order_to_ship_p95_s"), ("API calls", "api_calls"))


def _cells(d: Decision, o: Option) -> list[str]:
    out = []
    for _, kpi in COLUMNS:
        if kpi is None:
            out.append(f"{len(o.slos) - len(o.missed)}/{len(o.slos)}" if o.slos else "-")
        else:
            out.append(_n(o.value(kpi)))
    return out


def terminal(d: Decision, out: str | None = None) -> str:
    """The short summary `twin compare` and `twin sweep` print (well under 30 lines for a
    handful of options)."""
    width = max(len(o.name) for o in d.options) + 2
    heads = [h for h, _ in COLUMNS]
    rows = [[o.name + (" *" if o.name in d.pareto else ""), *_cells(d, o)] for o in d.options]
    widths = [max(width, *(len(r[0]) for r in rows))] + [
        max(len(h), *(len(r[i + 1]) for r in rows)) for i, h in enumerate(heads)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join([cells[0].ljust(widths[0])]
                         + [c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True)])

    lines = [f"Decision: {d.sentences[0]}", "", line(["", *heads]), *(line(r) for r in rows),
             "", "* Pareto set (no other option is better on damage, sync latency and API "
             "calls at once)", f"Ranking by {d.kpi}: " + ranking_line(d.ranking),
             *(f"- {s}" for s in d.sentences[1:]), *d.notes]
    if out:
        lines.append(f"Details: {out}/decision.md")
    return "\n".join(lines)


def ranking_line(r: Ranking) -> str:
    parts = []
    for e in r.entries:
        text = f"{e.rank}. {e.id} {fmt(e.estimate.mean) if e.estimate.n else '-'}"
        if e.estimate.interval_known and e.estimate.half_width > 0:
            text += f" ± {fmt(e.estimate.half_width)}"
        if e.ties:
            text += " (tie)"
        parts.append(text)
    return ", ".join(parts) + "; " + r.verdict()


def markdown(d: Decision, title: str) -> str:
    heads = [h for h, _ in COLUMNS]
    rows = ["| option | " + " | ".join(heads) + " |", "|" + "---|" * (len(heads) + 1)]
    rows += ["| " + " | ".join([o.name + (" (Pareto)" if o.name in d.pareto else ""),
                                *_cells(d, o)]) + " |" for o in d.options]
    per = []
    for o in d.options:
        per.append(f"### {o.name}")
        per += [f"- {name}: " + ("met" if met == runs else "MISSED")
                + (f" in {met} of {runs} runs" if runs > 1 else "")
                + (f" ({o.misses[name]})" if name in o.misses else "")
                for name, (met, runs) in o.slos.items()] or ["- no SLOs declared"]
        per.append("")
    runs = max(o.runs for o in d.options)
    return "\n".join([
        f"# Decision: {title}", "",
        *(f"{s}" if i == 0 else f"- {s}" for i, s in enumerate(d.sentences)), "",
        *d.notes, *([""] if d.notes else []),
        "## At a glance", "",
        ("Means over " + f"{runs} runs per option. " if runs > 1 else "")
        + "damage: what someone must fix at the end (stock units unexplained + orders stuck "
        "+ dead letters left); sync / ship p95: "
        "inventory sync and order-to-ship latency, \"> horizon\" when the percentile falls on "
        "work that never finished. Pareto: no other option is better on damage, sync latency "
        "and API calls at once.", "",
        *rows, "",
        f"## Ranking by {d.kpi} ({'lower' if d.ranking.lower_is_better else 'higher'} is "
        "better)", "", ranking_line(d.ranking), "",
        "## SLOs per option", "", *per,
    ])
