"""aekit's own error types.

Every problem a user can cause (a bad option, a bad file, an impossible model) is raised as
one of these, with a message that names the parameter or file, what was expected and what was
given. The command line turns them into a one-line message and a non-zero exit code.
"""

from __future__ import annotations

import difflib
from typing import Iterable


class AekitError(Exception):
    """Base class of every error aekit raises on purpose."""


class ConfigError(AekitError, ValueError):
    """An option, variant or combination of ingredients that cannot be built."""


class DataError(AekitError, ValueError):
    """A data source that is missing, unreadable or malformed."""


class ShapeError(AekitError, ValueError):
    """A tensor whose shape does not match what the model was built for."""


class CheckpointError(AekitError, ValueError):
    """A checkpoint or run directory that is missing, corrupted or incompatible."""


class TrainingError(AekitError, RuntimeError):
    """Training could not go on (a NaN or inf loss, for example)."""


class AekitWarning(UserWarning):
    """Base class of aekit's warnings: something ran, but probably not as the user meant."""


class ShortRunWarning(AekitWarning):
    """A training run too short to learn much (like scikit-learn's ConvergenceWarning)."""


def did_you_mean(value: str, choices: Iterable[str]) -> str:
    """Return ' Did you mean 'x'?' for the closest choice, or '' when nothing is close."""
    close = difflib.get_close_matches(str(value), list(choices), n=1, cutoff=0.5)
    return f" Did you mean {close[0]!r}?" if close else ""


def check_choice(name: str, value: str, choices: Iterable[str]) -> str:
    """Raise ConfigError naming `name`, the allowed values and `value` unless value is allowed.

    The values are listed in the order given (a set: sorted), so the message never changes
    from one run to the next."""
    choices = sorted(choices, key=str) if isinstance(choices, (set, frozenset)) else list(choices)
    if value not in choices:
        raise ConfigError(
            f"{name} must be one of {', '.join(map(repr, choices))}; got {value!r}."
            + did_you_mean(value, choices)
        )
    return value
