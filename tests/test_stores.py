"""Tracking-store addresses are untrusted input: every bad form is refused in one line with
exit code 2, within seconds, before MLflow sees it."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from disentangle.cli import main
from disentangle.errors import UsageError
from disentangle.stores import resolve_uri

RUN = ["run", "toy_autoencoder", "--dataset", "toy_blobs", "--no-progress", "--steps", "1",
       "--metrics", ""]


def _bad_stores(folder: Path) -> list[tuple[str, str]]:
    (folder / "text.db").write_text("these bytes are not an SQLite database\n")
    (folder / "folder.db").mkdir()
    return [
        (f"sqlite:///{folder}/text.db", "is not an SQLite database"),
        (f"sqlite:///{folder}/folder.db", "is a folder, not a database file"),
        ("sqlite:///", "give the database file"),
        ("sqlite://", "give the database file"),
        (f"sqlite:///{folder}/no/such/folder/x.db", "does not exist"),
        (f"sqlite:///{folder}/{'n' * 300}.db", "longer than the file system allows"),
        ("http://[::1", "is malformed: Invalid IPv6 URL"),
        ("http://127.0.0.1:abc", "is malformed: Port could not be cast"),
        ("http://127.0.0.1:9", "cannot reach the MLflow tracking server"),
        ("https://", "names no host"),
        ("ftp://x/y", "scheme 'ftp' is not a tracking store"),
        ("mlflow-artifacts://x", "scheme 'mlflow-artifacts' is not a tracking store"),
        ("\N{GRINNING FACE}://x", "is not a tracking store"),
        ("mysql+nosuchdriver://u@127.0.0.1/db", "is malformed"),
        ("x" * 5000, "5,000 characters long; at most 2,000"),
        (" ", "holds spaces or control characters"),
        ("sqlite:///a\x00b.db", "holds spaces or control characters"),
        ("sqlite:///\udcff.db", "is not valid text"),  # undecodable bytes, as argv holds them
        ("file:///some/folder", "MLFLOW_ALLOW_FILE_STORE=true"),
        ("databricks", "no Databricks workspace is configured"),
    ]


@pytest.fixture
def no_databricks(monkeypatch, tmp_path):
    monkeypatch.delenv("DATABRICKS_HOST", raising=False)
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


def test_every_bad_store_address_is_refused_in_one_line_within_seconds(with_toy, capsys,
                                                                       no_databricks):
    cases = _bad_stores(with_toy and Path.cwd())
    for uri, message in cases:
        for argv in (RUN, ["compare"], ["ui"], ["evaluate", "abc"], ["sync", "abc"]):
            started = time.monotonic()
            code = main([*argv, "--tracking-uri", uri])
            took = time.monotonic() - started
            out, err = capsys.readouterr()
            if argv[0] == "sync":  # sync names a run before a store
                assert code == 2 and "has no tracking records waiting" in err
                continue
            assert code == 2, (argv, uri, out, err)
            server_for_ui = argv[0] == "ui" and uri == "http://127.0.0.1:9"
            expected = "is a tracking server: open it in a browser" if server_for_ui else message
            assert expected in err, (argv, uri, err)
            assert len(err.strip().splitlines()) == 1 and "Traceback" not in out + err
            assert took < 10, (uri, took)
    assert not Path("mlflow.db").exists() and not Path("mlruns").exists()


def test_a_store_needing_a_missing_driver_says_which_package(with_toy, capsys, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def without_drivers(name, globals=None, locals=None, fromlist=(), level=0):
        if level == 0 and name.split(".")[0] in ("MySQLdb", "psycopg", "psycopg2"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return real_import(name, globals, locals, fromlist, level)

    monkeypatch.setattr(builtins, "__import__", without_drivers)
    for uri, package in [("mysql://u:secret@127.0.0.1:1/db", "pip install mysqlclient"),
                         ("postgresql://u:secret@127.0.0.1:1/db", "pip install psycopg"),
                         ("postgresql+psycopg2://u@127.0.0.1/db", "pip install psycopg2")]:
        assert main(["compare", "--tracking-uri", uri]) == 2
        err = capsys.readouterr().err
        assert "needs the database driver" in err and package in err
        assert "secret" not in err  # passwords are never printed


def test_good_addresses_resolve_to_absolute_ones(workdir):
    assert resolve_uri("sqlite:///runs.db") == f"sqlite:///{workdir / 'runs.db'}"
    assert resolve_uri("sqlite:////abs/x.db") == "sqlite:////abs/x.db"
    assert resolve_uri("store") == f"file://{workdir / 'store'}"
    assert resolve_uri("http://127.0.0.1:5000") == "http://127.0.0.1:5000"
    with pytest.raises(UsageError, match="names no host"):
        resolve_uri("postgresql:///db")


def test_a_fresh_sqlite_store_is_accepted_and_an_existing_one_is_read(with_toy, capsys):
    assert main([*RUN, "--tracking-uri", "sqlite:///fresh.db"]) == 0
    capsys.readouterr()
    with sqlite3.connect("fresh.db") as db:
        assert db.execute("SELECT count(*) FROM runs").fetchone() == (1,)
    assert main(["compare", "--tracking-uri", "sqlite:///fresh.db"]) == 2  # read: no scores
    assert "the 1 matching run(s) logged no eval scores" in capsys.readouterr().err
