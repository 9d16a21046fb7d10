"""The plugin registry: every model, dataset and metric, loaded through pluggy.

Plugins are found in the ``disentangle`` entry-point group (first-party ones included). A
plugin that fails to import or to register is recorded with its error in
:attr:`Registry.failures`; every other plugin keeps working. Every hook is called by pluggy
itself, so its call order, ``tryfirst``/``trylast`` and hook wrappers behave as pluggy
documents them (see :mod:`disentangle.hookspecs`).
"""

from __future__ import annotations

import functools
import importlib.metadata
import inspect
import types
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import pluggy

from disentangle import hookspecs
from disentangle.errors import NotApplicable, PluginError, UsageError

if TYPE_CHECKING:
    from disentangle.datasets import FactorDataset
    from disentangle.metrics import Metric
    from disentangle.models import Model

KINDS = ("model", "dataset", "metric")
#: the distribution of the first-party plugins, registered before any other
FIRST_PARTY = "disentangle-bench"
_HOOKS = {
    "model": "disentangle_register_models",
    "dataset": "disentangle_register_datasets",
    "metric": "disentangle_register_metrics",
}

T = TypeVar("T")


@dataclass(frozen=True)
class Entry(Generic[T]):
    """One registered model, dataset or metric, with where it came from."""

    kind: str
    name: str
    obj: T
    plugin: str
    distribution: str
    summary: str


@dataclass(frozen=True)
class PluginFailure:
    """A plugin that could not be used, and why."""

    plugin: str
    distribution: str
    stage: str
    error: str

    def __str__(self) -> str:
        return (
            f"plugin {self.plugin!r} ({self.distribution}) failed during {self.stage}: "
            f"{self.error}"
        )


def _summary(obj: Any) -> str:
    text = getattr(obj, "summary", None) or inspect.getdoc(obj) or ""
    return text.strip().splitlines()[0] if text.strip() else ""


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _wrong_kind(kind: str, obj: Any) -> str | None:
    """Why ``obj`` cannot be registered as a ``kind``, or None when it can."""
    from disentangle.datasets import FactorDataset
    from disentangle.metrics import Metric
    from disentangle.models import Model

    expected = {"model": Model, "dataset": FactorDataset}.get(kind)
    if expected is not None:
        if isinstance(obj, type) and issubclass(obj, expected):
            return None
        return f"a {kind} must be a subclass of {expected.__module__}.{expected.__name__}"
    return None if isinstance(obj, Metric) else "a metric must be a disentangle.metrics.Metric"


def _raising_plugin(hook: Any, exc: BaseException) -> str | None:
    """The plugin whose implementation of ``hook`` the traceback of ``exc`` passed through."""
    owners = {impl.function.__code__: impl.plugin_name for impl in hook.get_hookimpls()}
    frame = exc.__traceback__
    while frame is not None:
        if frame.tb_frame.f_code in owners:
            return owners[frame.tb_frame.f_code]
        frame = frame.tb_next
    return None


@dataclass
class Registry:
    """Everything the installed plugins registered, by kind and name."""

    manager: pluggy.PluginManager = field(default_factory=lambda: _new_manager())
    entries: dict[str, dict[str, Entry[Any]]] = field(
        default_factory=lambda: {kind: {} for kind in KINDS}
    )
    failures: list[PluginFailure] = field(default_factory=list)
    #: the distribution each registered plugin came from, by plugin name
    distributions: dict[str, str] = field(default_factory=dict)

    def add_plugin(self, module: types.ModuleType | object, name: str,
                   distribution: str = "<local>") -> None:
        """Register one plugin object (a module, usually) and collect what it provides.

        Its register hooks are called through pluggy, restricted to this one plugin. Errors
        are recorded in :attr:`failures`, never raised: one broken plugin must not take the
        others down.
        """
        try:
            self.manager.register(module, name=name)
            self.manager.check_pending()
        except (Exception, SystemExit) as exc:
            if self.manager.is_registered(module):
                self.manager.unregister(module)
            self.failures.append(PluginFailure(name, distribution, "registration", _describe(exc)))
            return
        self.distributions[name] = distribution
        others = [p for p in self.manager.get_plugins() if p is not module]
        for kind, hook_name in _HOOKS.items():
            try:
                results = self.manager.subset_hook_caller(hook_name, others)()
                provided = [obj for result in results for obj in result]
            except (Exception, SystemExit) as exc:
                self.failures.append(
                    PluginFailure(name, distribution, f"{hook_name}()", _describe(exc)))
                continue
            for obj in provided:
                self._add(kind, obj, name, distribution)

    def _add(self, kind: str, obj: Any, plugin: str, distribution: str) -> None:
        def fail(why: str) -> None:
            self.failures.append(PluginFailure(plugin, distribution, _HOOKS[kind] + "()", why))

        try:  # reading a plugin's object runs its code: any error is that plugin's
            why = _wrong_kind(kind, obj)
            entry_name = getattr(obj, "name", None) if why is None else None
            summary = _summary(obj) if why is None else ""
        except Exception as exc:
            fail(f"reading {kind} {obj!r}: {_describe(exc)}")
            return
        if why is not None:
            fail(f"{why}, not {obj!r}")
            return
        if not isinstance(entry_name, str) or not entry_name:
            fail(f"a {kind} without a 'name': {obj!r}")
            return
        existing = self.entries[kind].get(entry_name)
        if existing is not None:
            fail(f"{kind} {entry_name!r} is already provided by plugin {existing.plugin!r}")
            return
        self.entries[kind][entry_name] = Entry(kind, entry_name, obj, plugin, distribution,
                                               summary)

    def load_entry_points(self) -> None:
        """Import and register every plugin in the ``disentangle`` entry-point group, the
        first-party ones first (so a third-party plugin cannot take their names)."""
        points = sorted(importlib.metadata.entry_points(group=hookspecs.PROJECT),
                        key=lambda ep: ep.dist is None or ep.dist.name != FIRST_PARTY)
        for ep in points:
            dist = f"{ep.dist.name} {ep.dist.version}" if ep.dist else "<unknown>"
            try:
                module = ep.load()
            except (Exception, SystemExit) as exc:
                self.failures.append(PluginFailure(ep.name, dist, "import", _describe(exc)))
                continue
            self.add_plugin(module, ep.name, dist)

    def get(self, kind: str, name: str) -> Entry[Any]:
        """Look up a registered item; unknown names raise a UsageError listing what exists."""
        try:
            return self.entries[kind][name]
        except KeyError:
            known = ", ".join(sorted(self.entries[kind])) or "none"
            hint = ""
            if self.failures:
                hint = " (plugins that failed to load: " + "; ".join(map(str, self.failures)) + ")"
            raise UsageError(f"unknown {kind} {name!r}; available: {known}{hint}") from None

    def notify(self, hook_name: str, **kwargs: Any) -> None:
        """Call an event hook through pluggy; an exception names the plugin that raised it.

        The exception becomes a :class:`PluginError` naming the plugin whose implementation
        it came from, so a broken third-party hook is easy to find.
        """
        hook = getattr(self.manager.hook, hook_name)
        try:
            hook(**kwargs)
        except Exception as exc:
            plugin = _raising_plugin(hook, exc) or "<unknown>"
            raise PluginError(plugin, self.distributions.get(plugin, "<unknown>"),
                              f"{hook_name}()", exc) from exc

    @contextmanager
    def blame(self, kind: str, name: str, where: str) -> Iterator[None]:
        """Re-raise an unexpected exception from a plugin's code as a :class:`PluginError`.

        Errors the user can act on (:class:`UsageError`, :class:`NotApplicable`) and
        PluginErrors raised deeper pass unchanged.
        """
        with blame(self.get(kind, name), where):
            yield

    def model(self, name: str) -> type[Model]:
        return self.get("model", name).obj

    def dataset(self, name: str) -> type[FactorDataset]:
        return self.get("dataset", name).obj

    def metric(self, name: str) -> Metric:
        return self.get("metric", name).obj

    def metrics(self, names: Iterable[str]) -> list[Entry[Metric]]:
        """The registered metrics ``names``, in order (an unknown name is a UsageError)."""
        return [self.get("metric", name) for name in names]


@contextmanager
def blame(entry: Entry[Any], where: str) -> Iterator[None]:
    """Re-raise an unexpected exception from ``entry``'s plugin as a :class:`PluginError`
    (errors the user can act on, and PluginErrors raised deeper, pass unchanged)."""
    try:
        yield
    except (UsageError, NotApplicable, PluginError):
        raise
    except Exception as exc:
        raise PluginError(entry.plugin, entry.distribution, where, exc) from exc


def _new_manager() -> pluggy.PluginManager:
    manager = pluggy.PluginManager(hookspecs.PROJECT)
    manager.add_hookspecs(hookspecs)
    return manager


@functools.lru_cache(maxsize=1)
def get_registry() -> Registry:
    """The process-wide registry, loaded from entry points on first use."""
    registry = Registry()
    registry.load_entry_points()
    return registry
