"""The shape of the core: no import cycle, one config read back from every stored form, and
pluggy's own hook calling."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

import disentangle
import disentangle_plugins
from disentangle import record
from disentangle.config import RunConfig
from disentangle.registry import Registry, get_registry

#: the installed packages' folders (a clone's or site-packages', wherever they are imported from)
PACKAGES = {"disentangle": Path(disentangle.__file__).parent,
            "disentangle_plugins": Path(disentangle_plugins.__file__).parent}


def _module_name(package: str, folder: Path, path: Path) -> str:
    parts = [package, *path.relative_to(folder).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(packages: dict[str, Path]) -> dict[str, set[str]]:
    """Module -> the modules of ``packages`` it imports anywhere in its source: at the top,
    inside functions, and under ``if TYPE_CHECKING:`` alike."""
    sources = {_module_name(p, folder, path): path
               for p, folder in packages.items() for path in folder.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for module, path in sources.items():
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                # ``from pkg import submodule`` depends on the submodule, not on pkg's body
                subs = [f"{node.module}.{a.name}" for a in node.names]
                names = [n for n in subs if n in sources] or [node.module]
            else:
                continue
            targets.update(n for n in names if n in sources and n != module)
        graph[module] = targets
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` as a list of modules (first == last), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(module: str) -> list[str] | None:
        state[module] = 1
        path.append(module)
        for target in sorted(graph[module]):
            if state.get(target) == 1:
                return path[path.index(target):] + [target]
            if target not in state:
                found = visit(target)
                if found:
                    return found
        path.pop()
        state[module] = 2
        return None

    for module in sorted(graph):
        if module not in state:
            found = visit(module)
            if found:
                return found
    return None


def test_the_core_and_its_plugins_have_no_import_cycle() -> None:
    graph = import_graph(PACKAGES)
    assert "disentangle.run" in graph and "disentangle_plugins.models.gan" in graph
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph) or [])


def test_the_cycle_check_finds_a_cycle_under_type_checking(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "low.py").write_text("from typing import TYPE_CHECKING\n"
                                    "if TYPE_CHECKING:\n    from pkg.high import thing\n")
    (package / "high.py").write_text("def f():\n    from pkg import low\n")
    cycle = find_cycle(import_graph({"pkg": package}))
    assert cycle is not None and set(cycle) == {"pkg.low", "pkg.high"}


def test_metrics_sits_at_the_bottom_of_the_metric_stack() -> None:
    graph = import_graph(PACKAGES)
    assert graph["disentangle.metrics"] <= {"disentangle.datasets", "disentangle.models"}
    assert not graph["disentangle.evaluation"] & {"disentangle.run", "disentangle.loop",
                                                  "disentangle.plan"}


@pytest.mark.parametrize("model,dataset,overrides", [
    ("infogan", "dsprites", {}),
    ("infogan", "digits", {"categorical_sizes": "10,3", "lr_d": "none"}),
    ("beta_vae", "dsprites", {"beta": "6"}),
    ("acgan", "digits", {}),
])
def test_a_config_survives_every_stored_form(model: str, dataset: str,
                                             overrides: dict[str, str]) -> None:
    from disentangle.plan import plan_new, plan_stored

    registry = get_registry()
    plan = plan_new(RunConfig(model=model, dataset=dataset, metrics=("mig", "sap"),
                              experiment="e"), overrides, registry)
    model_cls = plan.model_cls
    settings, config = plan.settings, plan.model_config
    assert record.from_record(plan.record(), model_cls) == (settings, config)
    assert record.from_record(record.from_json(record.to_json(settings, config)),
                              model_cls) == (settings, config)
    assert record.from_record(yaml.safe_load(record.to_yaml(settings, config)),
                              model_cls) == (settings, config)
    assert record.from_params(record.to_params(settings, config), model_cls) == (settings,
                                                                                 config)
    stored = plan_stored(plan.record(), registry, steps=settings.steps + 5)
    assert stored.model_config == config and stored.settings.steps == settings.steps + 5


def _recorder(name: str, calls: list[str], **marks: bool) -> object:
    class Plugin:
        @disentangle.hookimpl(**marks)
        def disentangle_after_eval(self, run_id: str, step: int, scores: dict) -> None:
            calls.append(name)
    return Plugin()


def test_event_hooks_run_in_pluggys_order_with_tryfirst_and_wrappers() -> None:
    calls: list[str] = []
    registry = Registry()
    registry.add_plugin(_recorder("first", calls, tryfirst=True), "a")
    registry.add_plugin(_recorder("b", calls), "b")
    registry.add_plugin(_recorder("c", calls), "c")

    class Wrapper:
        @disentangle.hookimpl(wrapper=True)
        def disentangle_after_eval(self, run_id: str, step: int, scores: dict):
            calls.append("before")
            result = yield
            calls.append("after")
            return result

    registry.add_plugin(Wrapper(), "wrapper")
    registry.notify("disentangle_after_eval", run_id="r", step=1, scores={})
    assert calls == ["before", "first", "c", "b", "after"]


def test_a_raising_hook_is_named_even_behind_a_wrapper() -> None:
    from disentangle.errors import PluginError

    class Raises:
        @disentangle.hookimpl
        def disentangle_after_eval(self, run_id: str, step: int, scores: dict) -> None:
            raise KeyError("state")

    registry = Registry()
    registry.add_plugin(_recorder("ok", []), "ok", "ok-dist 1")
    registry.add_plugin(Raises(), "raiser", "raiser-dist 2")
    with pytest.raises(PluginError, match=r"plugin 'raiser' \(raiser-dist 2\) raised in "
                                          r"disentangle_after_eval\(\): KeyError"):
        registry.notify("disentangle_after_eval", run_id="r", step=1, scores={})


def test_register_hooks_that_return_the_wrong_kind_or_a_taken_name_are_refused() -> None:
    from disentangle_plugins.metrics.mig import METRIC

    class Wrong:
        @disentangle.hookimpl
        def disentangle_register_models(self) -> list:
            return ["not a class", int]

        @disentangle.hookimpl
        def disentangle_register_metrics(self) -> list:
            return [METRIC]

    registry = Registry()
    registry.add_plugin(_Mig(), "mig", "first 1")
    registry.add_plugin(Wrong(), "wrong", "wrong 1")
    assert registry.metric("mig") is METRIC and registry.entries["model"] == {}
    messages = [str(f) for f in registry.failures]
    assert len(messages) == 3 and all(m.startswith("plugin 'wrong' (wrong 1)") for m in messages)
    assert "a model must be a subclass of disentangle.models.Model, not 'not a class'" \
        in messages[0]
    assert "metric 'mig' is already provided by plugin 'mig'" in messages[2]


class _Mig:
    @disentangle.hookimpl
    def disentangle_register_metrics(self) -> list:
        from disentangle_plugins.metrics.mig import METRIC

        return [METRIC]


def _exploding_model(error: type[Exception]) -> type:
    """A model class whose ``name`` raises ``error`` when read."""
    from disentangle.models import Model

    class NameExplodes(type(Model)):
        @property
        def name(cls):
            raise error("name exploded")

    return NameExplodes("Exploding", (Model,), {})


@pytest.mark.parametrize("returned, message", [
    (lambda: 5, "TypeError"),  # (None is pluggy's "no answer": it registers nothing)
    (lambda: {"a": 1}, "a model must be a subclass of disentangle.models.Model, not 'a'"),
    (lambda: [object()], "a model must be a subclass of disentangle.models.Model, not <object"),
    (lambda: [3.5, None], "a model must be a subclass of disentangle.models.Model, not 3.5"),
    (lambda: "x", "a model must be a subclass of disentangle.models.Model, not 'x'"),
    (lambda: [_exploding_model(AttributeError)], "a model without a 'name'"),
    (lambda: [_exploding_model(RuntimeError)], "RuntimeError: name exploded"),
])
def test_every_bad_register_answer_is_that_plugins_failure(returned, message) -> None:
    class Bad:
        @disentangle.hookimpl
        def disentangle_register_models(self) -> object:
            return returned()

    registry = Registry()
    registry.add_plugin(_Mig(), "mig", "first 1")
    registry.add_plugin(Bad(), "bad", "bad 1")
    assert registry.metric("mig").name == "mig"  # the other plugin keeps working
    assert registry.entries["model"] == {}
    assert registry.failures and all(str(f).startswith("plugin 'bad' (bad 1) failed during "
                                                       "disentangle_register_models()")
                                     for f in registry.failures)
    assert message in str(registry.failures[0]), registry.failures
