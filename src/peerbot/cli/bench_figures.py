"""The figures of ``peerbot bench density`` from its measurements, and the issue's goals against
them: one JSON-ready dict (``--json``), and the lines printed at the end of a run.

A step *holds* when every participant connected, the 5th-percentile participant had ≥ 99 % audio
coverage and mean loss was ≤ 0.5 %. A client process runs on one core (aiortc holds the GIL), so
the largest step a mode held in one process is its participants per core.
"""

from __future__ import annotations

from typing import Any

COVERAGE_GOAL = 99.0  # % at the 5th percentile participant
LOSS_GOAL = 0.5  # % mean
CONTENDED = 10.0  # % of the hold the client waited for a CPU: other processes limited it
PER_CORE_GOAL = 150  # audio participants per core, peerbot's load mode
RATIO_GOAL = 5.0  # × plain aiortc's participants per core
RSS_GOAL_KB = 1024.0  # 1 MB of RSS per participant…
RSS_GOAL_AT = 300  # …at 300 participants
SETUP_GOAL_MS = 500.0  # setup p95…
SETUP_GOAL_JOINS = 20  # …of 20 simultaneous joins


def holds(result: dict[str, Any]) -> bool:
    """The density goal of a step: all connected, 5th-percentile coverage ≥ 99 %, mean loss ≤ 0.5 %."""
    return (result["connected"] == result["n"] and result["coverage_p5"] >= COVERAGE_GOAL
            and result["loss_mean"] <= LOSS_GOAL)


def contended(result: dict[str, Any]) -> bool:
    """The client waited for a CPU for a tenth of the window or more: the machine, not the client, limited it."""
    return bool(result.get("cpu_wait_percent", 0.0) >= CONTENDED)


def label(result: dict[str, Any]) -> str:
    """A step's mode and loop as the tables show them: ``peerbot +uvloop``, ``aiortc``."""
    return result["mode"] + (" +uvloop" if result.get("uvloop") else "")


def _variant(results: list[dict[str, Any]], steps: list[int]) -> dict[str, Any]:
    """What one mode on one loop held, from its steps (stepping stopped at the first that did not)."""
    held = [r for r in results if holds(r)]
    best = max(held, key=lambda r: r["n"]) if held else None
    failed = [r["n"] for r in results if not holds(r)]
    # CPU per participant (at its full 50 + 50 packets/s) at the largest step held (its fixed costs
    # best shared), else at its first step that connected anyone: what a free core gives,
    # whatever the machine's other load did to the wall clock.
    costed = best or next((r for r in results if r["connected"]), None)
    cost = costed["cpu_ms_per_full_participant"] if costed else None
    return {"mode": results[0]["mode"], "loop": "uvloop" if results[0].get("uvloop") else "asyncio",
            "held": best["n"] if best else None, "failed_at": min(failed, default=None),
            # every step it was given held: it may hold more than the figure says
            "lower_bound": bool(best and best["n"] >= max(steps)),
            "cpu_percent": best["cpu_percent"] if best else None,
            "rss_kb_per_participant": best["rss_kb_per_participant"] if best else None,
            "cpu_ms_per_participant": cost, "per_free_core": 1000 / cost if cost else None}


def _goal(name: str, goal: str, value: float | None, met: bool | None, unit: str, note: str = "") -> dict[str, Any]:
    return {"name": name, "goal": goal, "value": value, "unit": unit, "met": met, "note": note}


def _per_core_note(v: dict[str, Any] | None) -> str:
    if v is None:
        return ""
    held = f"{v['loop']}, one client process; " if v["held"] else ""
    if v["lower_bound"]:
        return held + "every step given held: it may hold more"
    return held + (f"N={v['failed_at']} did not hold" if v["failed_at"] else "")


def _ratio_note(ours: dict[str, Any] | None, plain: dict[str, Any] | None) -> str:
    if not (ours and plain and ours["held"] and plain["held"]):
        return ""
    if ours["lower_bound"] and not plain["lower_bound"]:
        return "peerbot held every step given: the ratio may be higher"
    if plain["lower_bound"] and not ours["lower_bound"]:
        return "plain aiortc held every step given: the ratio may be lower"
    return "both held every step given: a ratio of lower bounds" if ours["lower_bound"] else ""


def _rss_note(rss: dict[str, Any] | None) -> str:
    if not rss:
        return ""
    held = "it held" if rss["holds"] else "it did not hold"
    return f"{rss['connected']} connected, {rss['loop']}, {held}; {rss['source']}"


def _join_note(join: dict[str, Any] | None) -> str:
    if not join:
        return ""
    failed = f", {join['failed']} failed" if join["failed"] else ""
    return f"{join['connected']} connected{failed}, {join['processes']} worker process(es)"


def density_figures(results: list[dict[str, Any]], steps: dict[str, list[int]], modes: list[str],
                    rss: dict[str, Any] | None, joins: list[dict[str, Any]],
                    machine: dict[str, Any]) -> dict[str, Any]:
    """Everything the run found, and the goals met or not (``met`` None: not measured in this run)."""
    by_variant: dict[str, list[dict[str, Any]]] = {}
    for result in results:
        by_variant.setdefault(label(result), []).append(result)
    variants = [_variant(rs, steps[rs[0]["mode"]]) for rs in by_variant.values()]
    per_core: dict[str, dict[str, Any]] = {}
    for v in variants:  # a mode's best loop
        known = per_core.get(v["mode"])
        if known is None or (v["held"] or 0) > (known["held"] or 0):
            per_core[v["mode"]] = v
    ours, plain = per_core.get("peerbot"), per_core.get("aiortc")
    held_ratio = ours["held"] / plain["held"] if ours and plain and ours["held"] and plain["held"] else None
    cpu_ratio = (plain["cpu_ms_per_participant"] / ours["cpu_ms_per_participant"]
                 if ours and plain and ours["cpu_ms_per_participant"] and plain["cpu_ms_per_participant"] else None)

    held = ours["held"] if ours else None
    at_goal = rss if rss and rss.get("participants") == RSS_GOAL_AT else None
    rss_kb = at_goal["kb_per_participant"] if at_goal else None
    join = next((j for j in joins if (j["mode"], j["joins"], j["server"]) == ("peerbot", SETUP_GOAL_JOINS, "bench")),
                None)
    setup = join["setup_ms_p95"] if join else None
    goals = [
        # Every step held below the goal: a lower bound that says nothing of the goal (not "NOT met").
        _goal("participants_per_core", f">= {PER_CORE_GOAL}", held,
              None if ours is None or (ours["lower_bound"] and (held or 0) < PER_CORE_GOAL)
              else (held or 0) >= PER_CORE_GOAL, "participants", _per_core_note(ours)),
        _goal("ratio_to_aiortc", f">= {RATIO_GOAL:g}x", held_ratio,
              None if held_ratio is None else held_ratio >= RATIO_GOAL, "x", _ratio_note(ours, plain)),
        _goal(f"rss_kb_per_participant_at_{RSS_GOAL_AT}", f"<= {RSS_GOAL_KB:g} kB (1 MB)", rss_kb,
              None if rss_kb is None else rss_kb <= RSS_GOAL_KB, "kB", _rss_note(at_goal)),
        # A failed join has no setup time: its p95 would flatter, so any failure fails the goal.
        _goal(f"setup_p95_ms_{SETUP_GOAL_JOINS}_joins", f"<= {SETUP_GOAL_MS:g} ms", setup,
              None if join is None else setup is not None and setup <= SETUP_GOAL_MS and not join["failed"], "ms",
              _join_note(join)),
    ]
    return {"machine": machine, "criteria": {"coverage_p5_min_percent": COVERAGE_GOAL,
                                             "loss_mean_max_percent": LOSS_GOAL},
            "modes": modes, "steps": [{**r, "holds": holds(r), "contended": contended(r)} for r in results],
            "variants": variants, "per_core": per_core, "ratio": {"held": held_ratio, "cpu": cpu_ratio},
            "rss": rss, "joins": joins, "goals": goals}


# --- printed ---------------------------------------------------------------------------------


def _n(value: float | None, digits: int = 0, unit: str = "") -> str:
    return "–" if value is None else f"{value:.{digits}f}{unit}"


def _held_text(v: dict[str, Any]) -> str:
    if v["held"] is None:
        return f"held no step (N={v['failed_at']} did not)" if v["failed_at"] else "held no step"
    bound = "≥ " if v["lower_bound"] else ""
    next_step = f", {v['failed_at']} did not" if v["failed_at"] else ", its largest step"
    return (f"held {bound}{v['held']} in one process ({v['cpu_percent']:.0f} % of a core,"
            f" {v['rss_kb_per_participant']:.0f} kB RSS each{next_step})")


def summary_lines(figures: dict[str, Any]) -> list[str]:
    """The figures, a line each: per mode, the ratio, RSS at 300, the simultaneous joins."""
    lines = []
    for v in figures["variants"]:
        name = v["mode"] + (" +uvloop" if v["loop"] == "uvloop" else "")
        cost = v["cpu_ms_per_participant"]
        cpu = (f"; {cost:.2f} ms CPU per participant-second → ≈ {v['per_free_core']:.0f} per free core"
               if cost else "")
        lines.append(f"{name}: {_held_text(v)}{cpu}")
    ours, plain = figures["per_core"].get("peerbot"), figures["per_core"].get("aiortc")
    if ours and plain:
        ratio = figures["ratio"]
        held = (f"{ratio['held']:.1f}× the participants held ({ours['held']} / {plain['held']})"
                if ratio["held"] else "– participants held (a mode held no step)")
        lines.append(f"ratio peerbot / plain aiortc: {held}, {_n(ratio['cpu'], 1, '×')} less CPU per participant")
    rss = figures["rss"]
    if rss:
        held = "it held" if rss["holds"] else "it did not hold: RSS is still what 300 joined cost"
        lines.append(f"RSS at {rss['participants']} participants ({rss['source']}, {rss['connected']} connected,"
                     f" {held}): {_n(rss['kb_per_participant'])} kB per participant")
    for j in figures["joins"]:
        failed = f", {j['failed']} failed {j['errors']}" if j["failed"] else ""
        lines.append(f"{j['joins']} simultaneous joins, {j['mode']}: setup p50 {_n(j['setup_ms_p50'])} ms,"
                     f" p95 {_n(j['setup_ms_p95'])} ms, max {_n(j['setup_ms_max'])} ms{failed} — {j['how']}")
    return lines


def goal_lines(figures: dict[str, Any]) -> list[str]:
    """The goals block: each goal, the measured figure, met / not met / not measured."""
    shown = {"participants_per_core": ("audio participants per core, peerbot", "{:.0f}"),
             "ratio_to_aiortc": ("× plain aiortc (participants held)", "{:.1f}×"),
             f"rss_kb_per_participant_at_{RSS_GOAL_AT}": (f"RSS per participant at {RSS_GOAL_AT}", "{:.0f} kB"),
             f"setup_p95_ms_{SETUP_GOAL_JOINS}_joins": (f"setup p95, {SETUP_GOAL_JOINS} joins at once, peerbot",
                                                        "{:.0f} ms")}
    lines = [f"goals (coverage p5 ≥ {COVERAGE_GOAL:g} %, loss ≤ {LOSS_GOAL:g} %; {figures['machine']['summary']}):"]
    for goal in figures["goals"]:
        title, form = shown[goal["name"]]
        value = "–" if goal["value"] is None else form.format(goal["value"])
        verdict = {True: "met", False: "NOT met", None: "not shown"}[goal["met"]]
        note = f"  ({goal['note']})" if goal["note"] else ""
        lines.append(f"  {title:<44} {goal['goal']:<20} {value:>10}   {verdict:<12}{note}".rstrip())
    for j in figures["joins"]:
        if (j["mode"], j["joins"], j["server"]) == ("peerbot", SETUP_GOAL_JOINS, "bench"):
            continue  # the goal above
        who = "peerbot" if j["mode"] == "peerbot" else "plain aiortc"
        title = f"setup p95, {j['joins']} joins at once, {who}"
        fresh = "a fresh server, as peerbot load --reflect; " if j["server"] == "fresh" else ""
        lines.append(f"  {title:<44} {'(no goal)':<20} {_n(j['setup_ms_p95'], 0, ' ms'):>10}   {'':<12}"
                     f"  ({fresh}{_join_note(j)})")
    return lines
