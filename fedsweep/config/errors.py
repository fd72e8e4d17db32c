"""`ConfigError`: one user mistake in the configuration, and how values are shown in its message.

Every check of fedsweep/config/ raises it; the entry point prints `error: <message>` and exits 2.
This module imports nothing of the project, so every other config module can import it.
"""

import difflib
from collections.abc import Iterable
from typing import Any


class ConfigError(ValueError):
    """One user mistake in the configuration; `str()` is the line shown after `error: `.

    `key` names the dotted key at fault (`runner.retries`), when there is one.
    """

    def __init__(self, message: str, *, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


def show(value: Any) -> str:
    """A value as the user would type it: strings quoted, None as null, bools lower-case."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """` (did you mean rounds?)` when one of `choices` is close to the mistyped `name` (difflib's
    ratio >= 0.6, the closest), else ''. Written right after the unknown name in an error line."""
    close = difflib.get_close_matches(name, [str(c) for c in choices], n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else ""
