"""What a command will do, said before anything slow: the start-up line and the dry run.

Both read each cell's committed checkpoints (manifest and meta, no tensors), import neither Prefect
nor MLflow, and write nothing:

    starting 4 cells of quickstart in outputs/quickstart: 2 finished (skipped), 1 to resume, 1 new

    python flows/sweep.py +experiment=quickstart --dry-run
    dry run (nothing is run or written): 4 cells of quickstart in outputs/quickstart
      fedavg-c10-r5-s0   finished (skipped)   strategy=fedavg num_clients=10
      fedavg-c50-r5-s0   resumes after round 2 of 5   strategy=fedavg num_clients=50
      ...
"""

from collections import Counter

from cli.plan import SweepPlan
from fedsweep.cell.layout import committed_round

_ANNOUNCED: set[int] = set()


def cell_states(plan: SweepPlan) -> list[tuple[str, str]]:
    """(kind, what happens to it) per cell: kind is finished, resume, new or over (`resume=false`)."""
    states = []
    for cell in plan.cells:
        if not plan.resume:
            states.append(("over", "starts over (resume=false)"))
            continue
        rounds, done = cell["config"]["rounds"], committed_round(cell["dir"])
        if done >= rounds:
            states.append(("finished", "finished (skipped)"))
        elif done:
            states.append(("resume", f"resumes after round {done} of {rounds}"))
        else:
            states.append(("new", "new"))
    return states


def _heading(plan: SweepPlan) -> str:
    return f"{len(plan.cells)} cell{'s' if len(plan.cells) != 1 else ''} of {plan.name} in {plan.dir}"


def announce(plan: SweepPlan) -> None:
    """The job's start-up line, once per plan (the entry point prints the first before Prefect starts)."""
    if id(plan) in _ANNOUNCED:
        return
    _ANNOUNCED.add(id(plan))
    counts = Counter(kind for kind, _ in cell_states(plan))
    words = {"finished": "finished (skipped)", "resume": "to resume", "new": "new", "over": "starting over"}
    parts = [f"{counts[kind]} {word}" for kind, word in words.items() if counts[kind]]
    print(f"starting {_heading(plan)}: {', '.join(parts)}", flush=True)


def dry_run_text(plans: list[SweepPlan]) -> str:
    """Every job's cells, what would happen to each, and the overrides that make it (grid and scoped)."""
    blocks, first_job = [], {}
    for number, plan in enumerate(plans, start=1):
        job = f"job {number} of {len(plans)}: " if len(plans) > 1 else ""
        rows = []
        for cell, (kind, what), overrides in zip(plan.cells, cell_states(plan), plan.overrides, strict=True):
            if kind != "finished" and first_job.setdefault(cell["key"], number) != number:
                what = f"runs in job {first_job[cell['key']]}, then skipped"
            rows.append((cell["name"], what, " ".join(overrides)))
        widths = [max(len(row[i]) for row in rows) for i in range(2)]
        lines = [
            f"  {name.ljust(widths[0])}  {what.ljust(widths[1])}  {made}".rstrip()
            for name, what, made in rows
        ]
        blocks.append("\n".join([f"dry run (nothing is run or written): {job}{_heading(plan)}", *lines]))
    return "\n".join(blocks)
