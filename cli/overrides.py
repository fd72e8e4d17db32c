"""Command-line overrides of keys that exist in some grid cells only: `strategy.mu=0.1` in a
FedAvg-vs-FedProx grid sets FedProx's mu in the FedProx cells and leaves the FedAvg cells alone.

The rule, for a config group the grid varies (its options chosen per cell): `GROUP.KEY=VALUE` on the
command line is set in the cells whose option has KEY. One that reaches no cell, and the forms that
cannot work (`+strategy.mu=…`, which adds a key where it is not wanted, and `grid.strategy.fedprox.mu=…`,
which reaches into a list of options), are one ConfigError that states the rule and the grid's options.
Hydra's own job composition never sees such a key bare: `for_hydra` hands it over as `++KEY=VALUE`.
"""

from collections.abc import Mapping
from typing import Any

from fedsweep.config import ConfigError
from fedsweep.config.compose import Composed, compose_cell
from fedsweep.grid import GridError, deferred, expand_grid, override_key, scoped_overrides, varied_groups


def for_hydra(overrides: list[str], scoped: tuple[str, ...]) -> list[str]:
    """The overrides as `hydra.main` gets them: a key that exists only in some cells (`strategy.mu`) is
    added to the job's config with `++` (the job runs the plan, never that config)."""
    keys = {override_key(o) for o in scoped}
    return [f"++{o.lstrip('+')}" if override_key(o) in keys else o for o in overrides]


def read_command_line(
    config_name: str, overrides: list[str]
) -> tuple[Composed, list[str], list[str], dict[str, list[str]]]:
    """(the base config composed, the overrides every cell gets, the overrides of a key inside a group
    the grid varies: each cell gets those it has, the varied groups and their options). The grid is
    read first without the overrides of nested keys, which may exist in some cells only."""
    early = [o for o in overrides if not deferred(o)]
    base = compose_cell(config_name, early)
    grid = base.config.get("grid")
    if not isinstance(grid, Mapping):
        raise ConfigError(f"grid must be a mapping of key: [values] (got {grid!r})", key="grid")
    try:
        varied = varied_groups(expand_grid(grid, early), base.choices)
    except GridError as err:
        raise ConfigError(str(err), key="grid") from None
    scoped = scoped_overrides(overrides, varied)
    for override in overrides:
        _check_scoped_form(override, grid, varied)
    common = [o for o in overrides if o not in scoped]
    if common != early:
        base = compose_cell(config_name, common)
    return base, common, scoped, varied


def _check_scoped_form(override: str, grid: Mapping[str, Any], varied: dict[str, list[str]]) -> None:
    """The other ways to set a grid option's key, refused with the one that works."""
    key = override_key(override)
    parts, value = key.split("."), override.split("=", 1)[1] if "=" in override else "VALUE"
    prefix = override[: len(override) - len(override.lstrip("+~"))]
    if prefix and parts[0] in varied and len(parts) > 1:
        raise _scope_error(override, parts[0], varied[parts[0]], f"write {key}={value} (without {prefix})")
    if parts[0] == "grid" and len(parts) > 3 and not isinstance(grid.get(parts[1]), Mapping):
        group, leaf = parts[1], ".".join(parts[3:])
        if group not in varied:
            raise ConfigError(
                f"{override}: grid.{group} is a list of values, not of labelled overrides", key=key
            )
        raise _scope_error(
            override,
            group,
            varied[group],
            f"grid.{group} is a list of options, not of labelled overrides; write {group}.{leaf}={value}",
        )


def check_reached(scoped: list[str], applied: list[tuple[str, ...]], varied: dict[str, list[str]]) -> None:
    """Every grid-scoped override reaches at least one cell."""
    for override in scoped:
        if not any(override in cell for cell in applied):
            group, leaf = override_key(override).split(".", 1)
            raise _scope_error(
                override, group, varied[group], f"reaches no cell: no {group} of the grid has {leaf}"
            )


def _scope_error(override: str, group: str, options: list[str], problem: str) -> ConfigError:
    """One message for every way of setting a key of a grid's option: what went wrong, then the rule."""
    return ConfigError(
        f"{override}: {problem}; {group}.KEY=VALUE sets KEY in the cells whose {group} has it "
        f"(the grid's {group} options: {', '.join(options)})",
        key=override_key(override),
    )
