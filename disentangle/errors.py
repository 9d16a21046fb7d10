"""Errors that are the user's to fix: the CLI prints them without a traceback."""

from __future__ import annotations


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message ("" when it has none): messages quote
    errors from other code, which may run over many lines, in one line."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""


class UsageError(Exception):
    """Bad input from the user (unknown name, ill-typed value, missing file...).

    The CLI prints the message and exits with code 2; no traceback is shown.
    """

    exit_code = 2


class NoCheckpoint(UsageError):
    """A logged run has no checkpoint yet (it stopped before writing its first one)."""


class NotApplicable(Exception):
    """A metric cannot score this model/dataset pair (e.g. no categorical code).

    The evaluator reports it as skipped, with this message, instead of failing the run.
    """


class DivergenceError(RuntimeError):
    """Training diverged: a loss, or the state about to be checkpointed, is NaN or infinite."""

    @classmethod
    def loss(cls, name: str, step: int, value: float) -> DivergenceError:
        return cls(f"loss {name!r} diverged at step {step} (value {value})")

    @classmethod
    def state(cls, where: str, step: int) -> DivergenceError:
        return cls(f"the training state holds NaN or infinite values at step {step} "
                   f"({where}); it was not checkpointed")


class PluginError(RuntimeError):
    """A plugin's code raised: the message names the plugin, where it failed and the error."""

    def __init__(self, plugin: str, distribution: str, where: str, error: BaseException):
        super().__init__(f"plugin {plugin!r} ({distribution}) raised in {where}: "
                         f"{type(error).__name__}: {error}")
        self.plugin, self.distribution, self.where, self.error = plugin, distribution, where, error
