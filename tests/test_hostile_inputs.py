"""Hostile command lines: random ``--set`` assignments and random argument lists.

Each must end in success or in a clear one-line error with exit code 2, never a traceback.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hostile_corpus import corpus
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from disentangle.cli import main

BASE = ["run", "toy_autoencoder", "--dataset", "toy_blobs", "--no-progress", "--metrics", "",
        "--steps", "1"]
# (the toy's diverge_at and fail_at make a run fail on purpose, with exit code 1: not fuzzed)
KEYS = ["latents", "lr", "step_delay"]
#: text that is not an option: may be empty, unicode, or look like numbers and lists
WORDS = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["", "-1", "0", "1", "2", "1e9", "-0.0", "nan", "inf", "1,2", "true",
                     "None", "=", "==", "toy_autoencoder", "toy_blobs", "mig", "../x", "\x00"]),
    st.integers(-3, 3).map(str),
)
TOKENS = st.one_of(
    WORDS,
    st.sampled_from(["run", "list", "show", "evaluate", "sync", "data", "fetch", "--dataset",
                     "--steps", "--batch-size", "--seed", "--device", "--set", "--metrics",
                     "--eval-every", "--checkpoint-every", "--resume", "--experiment",
                     "--data-dir", "--no-progress", "--version", "--help", "-d", "cpu", "cuda",
                     "cuda:7", "latents=2", "lr=0.1"]),
)


@pytest.mark.parametrize("option,value,message", [
    ("--seed", "-1", "seed must lie in [0, 9,223,372,036,854,775,807], not -1"),
    ("--seed", "18446744073709551616", "seed must lie in [0, 9,223,372,036,854,775,807]"),
    ("--steps", "99999999999999999999999999", "steps must lie in [0, 1,000,000,000]"),
    ("--batch-size", "1000000000", "batch_size must lie in [1, 100,000]"),
    ("--eval-every", "0", "eval_every must lie in [1, 1,000,000,000], not 0"),
    ("--device", "cpu:1", "--device cpu:1: there is one cpu device; use --device cpu"),
])
def test_out_of_range_settings_are_refused_before_anything_runs(with_toy, capsys, option,
                                                                value, message):
    assert main([*BASE, option, value]) == 2
    out, err = capsys.readouterr()
    assert message in err and "Traceback" not in out + err
    if option != "--device":  # a device is looked for where the run will train
        assert not Path("mlflow.db").exists()  # refused before the tracking store is touched


def _ends_cleanly(argv: list[str], capsys: pytest.CaptureFixture) -> None:
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse: usage errors and --help/--version
        code = exc.code
    out, err = capsys.readouterr()
    event(f"exit code {code}")
    assert code in (0, 2), (argv, code, out, err)
    assert "Traceback" not in out + err, argv
    if code == 2:
        assert err.strip(), f"exit code 2 without a message: {argv}"


# Every example runs in the same folder: runs that succeed add to one MLflow store.
SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


@SETTINGS
@given(st.lists(st.tuples(st.one_of(st.sampled_from(KEYS), WORDS), WORDS), max_size=3))
def test_random_set_assignments_succeed_or_fail_clearly(with_toy, capsys, assignments):
    argv = list(BASE)
    for key, value in assignments:
        argv += ["--set", f"{key}={value}"]
    argv += ["--set", "step_delay=0"]  # keep a successful run short (the last value wins)
    _ends_cleanly(argv, capsys)


@settings(SETTINGS, max_examples=300)
@given(st.lists(TOKENS, max_size=8))
def test_random_argument_lists_succeed_or_fail_clearly(with_toy, capsys, argv):
    if "run" in argv:  # keep a successful run short
        argv = [*argv, "--steps", "1", "--metrics", ""]
    _ends_cleanly(argv, capsys)


def test_the_hostile_corpus_gets_one_line_and_exit_code_2(with_toy, capsys, tmp_path,
                                                         monkeypatch):
    """Every invocation of the fixed corpus: exit code 2, one ``error:`` line on stderr, no
    traceback, nothing trained; the counts are printed for the record."""
    monkeypatch.delenv("DATABRICKS_HOST", raising=False)
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    cases = corpus(tmp_path)
    assert len(cases) >= 300
    other = []
    for argv in cases:
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse
            code = exc.code
        out, err = capsys.readouterr()
        lines = err.strip().splitlines()
        if code != 2 or len(lines) != 1 or not lines[0].startswith("error: ") \
                or "Traceback" in out + err:
            other.append((argv[-4:], code, err[-200:]))
    with capsys.disabled():
        print(f"\nhostile corpus: {len(cases)} tried, {len(cases) - len(other)} exit 2 with "
              f"one line, {len(other)} other")
    assert not other, "\n".join(map(repr, other))
    assert not list(Path().glob("mlruns/*/*/artifacts/checkpoints"))  # nothing trained


def test_a_batch_that_cannot_fit_is_refused_before_the_run_exists(with_toy, capsys,
                                                                  monkeypatch):
    from disentangle import device

    monkeypatch.setattr(device, "available_memory", lambda _: 64 * 2**20)  # 64 MiB free
    assert main([*BASE, "--batch-size", "100000"]) == 2
    err = capsys.readouterr().err
    assert "batch size 100,000 needs 0.1 GiB for its images alone, over a quarter of the " \
           "0.1 GiB free on cpu; lower --batch-size" in err
    assert not Path("mlflow.db").exists() or not list(Path().glob("mlruns/*/*"))


def test_running_out_of_memory_mid_run_is_one_line_and_a_failed_run(with_toy, capsys,
                                                                    monkeypatch):
    from toy_plugin import ToyAutoencoder

    def allocate(self, images, factors, step):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:119] DefaultCPUAllocator: can't "
                           "allocate memory: you tried to allocate 99999999999 bytes")

    monkeypatch.setattr(ToyAutoencoder, "train_step", allocate)
    assert main(BASE) == 1
    out = capsys.readouterr().out
    assert "error: out of memory on cpu at step 1 with batch size 64; lower --batch-size" in out


def test_a_plugin_whose_attributes_raise_is_named_by_show(with_toy, capsys, monkeypatch):
    from toy_plugin import ToyAutoencoder

    class Exploding:
        def __get__(self, obj, owner):
            raise AttributeError("default_steps exploded")

    monkeypatch.setattr(ToyAutoencoder, "default_steps", Exploding())
    assert main(["show", "toy_autoencoder"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: plugin 'toy' (toy_plugin 1.0) raised in its "
                          "defaults, for show: AttributeError: default_steps exploded")
    assert len(err.strip().splitlines()) == 1
