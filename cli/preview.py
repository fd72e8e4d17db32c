"""What a command will do, said before anything slow: the start-up line and the dry run.

Both read each cell's committed checkpoints (manifest and meta, no tensors), import neither Prefect
nor MLflow, and write nothing:

    starting 4 cells of quickstart in outputs/quickstart: 1 finished (skipped), 1 to extend, 2 new

    python flows/sweep.py +experiment=csfl rounds=120 --dry-run      (figures for illustration)
    dry run (nothing is run or written): 3 cells of csfl in outputs/csfl
      fedavg-c100-r120-s0-uniform  extends from round 100 to 120: about 12 min left at 35 s a round ...
      fedavg-c100-r120-s0-pow_d    resumes after round 40 of 120: about 52 min left at 39 s a round ...
      fedavg-c100-r120-s0-oort     new

A cell `extends` when it had finished at fewer rounds than asked (its `cell.json` says the rounds its
last run asked for), `resumes` when a run stopped before its end. The estimate (from the committed
rounds' own times, checkpoint waits included) is shown once it is a minute or more.
"""

from collections import Counter
from typing import Any

from cli.plan import SweepPlan
from fedsweep.cell.layout import committed_history, read_cell_config
from fedsweep.summary import training_seconds
from server.records import start_line_printed

_ANNOUNCED: set[int] = set()
_SHOW_ESTIMATE_S = 60  # a cell with less left than this gets no estimate (a short sweep's lines stay short)


def cell_states(plan: SweepPlan) -> list[tuple[str, str]]:
    """(kind, what happens to it) per cell: kind is finished, extend, resume, new or over
    (`resume=false`); what a cell left to train still takes, from its committed rounds' times."""
    return [_state(cell, plan.resume) for cell in plan.cells]


def _state(cell: dict[str, Any], resume: bool) -> tuple[str, str]:
    rounds, note = int(cell["config"]["rounds"]), _rounds_note(cell)
    if not resume:
        return "over", "starts over (resume=false)" + note
    history = committed_history(cell["dir"])
    done = len(history)
    if done >= rounds:
        more = (
            f": {done} rounds committed, more than rounds={rounds}; nothing is undone"
            if done > rounds
            else ""
        )
        return "finished", f"finished (skipped){more}" + note
    if not done:
        return "new", "new" + note
    if _recorded_rounds(cell["dir"]) <= done:  # it had finished, at fewer rounds
        return "extend", f"extends from round {done} to {rounds}{_estimate(history, rounds)}" + note
    return "resume", f"resumes after round {done} of {rounds}{_estimate(history, rounds)}" + note


def _recorded_rounds(cell_dir: str) -> int:
    """The rounds the cell's last run was asked for (its `cell.json`); 0 if unreadable."""
    try:
        return int(read_cell_config(cell_dir)["config"]["rounds"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0


def _estimate(history: list[dict[str, Any]], rounds: int) -> str:
    """`: about 3.1 h left at 34 s a round (measured in rounds 1-5)`, from the committed rounds' times."""
    done = len(history)
    per_round = training_seconds(history) / done if done else 0.0
    left = per_round * (rounds - done)
    if left < _SHOW_ESTIMATE_S:
        return ""
    measured = "round 1" if done == 1 else f"rounds 1-{done}"
    return f": about {duration(left)} left at {duration(per_round)} a round (measured in {measured})"


def duration(seconds: float) -> str:
    """`40 s`, `12 min`, `3.1 h`."""
    if seconds >= 5400:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 90:
        return f"{round(seconds / 60)} min"
    return f"{seconds:.0f} s" if seconds >= 10 else f"{seconds:.1f} s"


def _rounds_note(cell: dict[str, Any]) -> str:
    """Where `rounds` is part of what a cell is because settings are interpolated from it."""
    keys = cell.get("rounds_from") or []
    if not keys:
        return ""
    verb = "depends" if len(keys) == 1 else "depend"
    return f" (rounds is part of this cell: {', '.join(keys)} {verb} on it; other rounds are another cell)"


def _heading(plan: SweepPlan) -> str:
    return f"{len(plan.cells)} cell{'s' if len(plan.cells) != 1 else ''} of {plan.name} in {plan.dir}"


def announce(plan: SweepPlan) -> None:
    """The job's start-up line, once per plan (the entry point prints the first before Prefect starts)."""
    if id(plan) in _ANNOUNCED:
        return
    _ANNOUNCED.add(id(plan))
    counts = Counter(kind for kind, _ in cell_states(plan))
    words = {
        "finished": "finished (skipped)",
        "extend": "to extend",
        "resume": "to resume",
        "new": "new",
        "over": "starting over",
    }
    parts = [f"{counts[kind]} {word}" for kind, word in words.items() if counts[kind]]
    print(f"starting {_heading(plan)}: {', '.join(parts)}", flush=True)
    start_line_printed()  # the start-up's steps are said once silent for a few seconds from here


def dry_run_text(plans: list[SweepPlan]) -> str:
    """Every job's cells, what would happen to each, and the overrides that make it (grid and scoped).
    A cell that an earlier job of a `-m` runs is said to be extended by this job, or skipped."""
    blocks, earlier = [], {}  # key -> (job, rounds) of the last job that runs it
    for number, plan in enumerate(plans, start=1):
        job = f"job {number} of {len(plans)}: " if len(plans) > 1 else ""
        rows = []
        for cell, (kind, what), overrides in zip(plan.cells, cell_states(plan), plan.overrides, strict=True):
            rounds = int(cell["config"]["rounds"])
            if kind != "finished" and cell["key"] in earlier:
                before, upto = earlier[cell["key"]]
                if rounds > upto:
                    what = f"extends from round {upto} to {rounds} (after job {before})"
                else:
                    what = f"runs in job {before}, then skipped"
            if kind != "finished" and rounds >= earlier.get(cell["key"], (0, 0))[1]:
                earlier[cell["key"]] = (number, rounds)
            rows.append((cell["name"], what, " ".join(overrides)))
        widths = [max(len(row[i]) for row in rows) for i in range(2)]
        lines = [
            f"  {name.ljust(widths[0])}  {what.ljust(widths[1])}  {made}".rstrip()
            for name, what, made in rows
        ]
        blocks.append("\n".join([f"dry run (nothing is run or written): {job}{_heading(plan)}", *lines]))
    return "\n".join(blocks)
