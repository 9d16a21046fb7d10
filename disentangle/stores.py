"""Tracking-store addresses: read as untrusted input, checked before MLflow sees them.

A tracking URI comes from the command line or the environment. MLflow answers a bad one
with a traceback, or with minutes of retries (a directory named like a database, an empty
SQLite path, a server that never answers), so every address is first parsed and checked
here: its shape without touching anything (:func:`resolve_uri`), then the store itself with
a probe bounded to seconds (:func:`check_store`). Each failure is one
:class:`~disentangle.errors.UsageError` naming the address and the reason.
"""

from __future__ import annotations

import os
import re
import socket
import sqlite3
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from disentangle.errors import UsageError

DEFAULT_URI = "sqlite:///mlflow.db"
#: longest address accepted (far above any real one; bounds what is parsed and printed)
MAX_LENGTH = 2000
#: SQLAlchemy database stores MLflow supports, and the TCP port each listens on by default
DATABASES = {"postgresql": 5432, "mysql": 3306, "mssql": 1433}
#: the pip package that provides a database driver module, where the names differ
_PACKAGES = {"MySQLdb": "mysqlclient", "psycopg": "psycopg[binary]",
             "psycopg2": "psycopg2-binary", "pymysql": "PyMySQL"}
SCHEMES = ("sqlite", "http", "https", "file", *DATABASES, "databricks")


def _shown(uri: str) -> str:
    """The address as printed in messages: shortened, and with any password masked."""
    uri = re.sub(r"(//[^/:@]*:)[^/@]*@", r"\1***@", uri)
    return repr(uri if len(uri) <= 80 else uri[:77] + "...")


def resolve_uri(uri: str | None = None) -> str:
    """The tracking URI to use (argument, else ``$MLFLOW_TRACKING_URI``, else
    ``sqlite:///mlflow.db``), with a relative SQLite or file path made absolute.

    Only the address's shape is checked here: scheme, host, port, and that a path is given.
    """
    uri = uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_URI
    if len(uri) > MAX_LENGTH:
        raise UsageError(f"tracking URI {_shown(uri)} is {len(uri):,} characters long; "
                         f"at most {MAX_LENGTH:,} are accepted")
    try:
        uri.encode("utf-8")
    except UnicodeEncodeError:
        raise UsageError(f"tracking URI {_shown(uri)} is not valid text") from None
    if not uri.isprintable() or uri != uri.strip() or not uri:
        raise UsageError(f"tracking URI {_shown(uri)} holds spaces or control characters")
    if uri == "databricks" or uri.startswith("databricks://"):
        return uri
    if "://" not in uri:  # a plain folder path: MLflow's file store
        return "file://" + str(Path(uri).resolve())
    scheme = uri.split("://", 1)[0].lower()
    base = scheme.split("+", 1)[0]  # dialect+driver://, as SQLAlchemy writes it
    if base not in SCHEMES or (base != scheme and base not in DATABASES):
        raise UsageError(f"tracking URI {_shown(uri)}: scheme {scheme!r} is not a tracking "
                         f"store; use one of {', '.join(s + '://' for s in SCHEMES[:-1])} "
                         "or databricks")
    if base == "sqlite":
        if not uri.startswith("sqlite:///") or len(uri) == len("sqlite:///"):
            raise UsageError(f"tracking URI {_shown(uri)}: give the database file, as "
                             "sqlite:///relative/path.db or sqlite:////absolute/path.db")
        path = uri[len("sqlite:///"):]
        return "sqlite:///" + str(Path(path).resolve())
    try:
        parts = urllib.parse.urlsplit(uri)
        parts.port  # noqa: B018 (parsing the port is the check)
    except ValueError as exc:
        raise UsageError(f"tracking URI {_shown(uri)} is malformed: {exc}") from None
    if base == "file":
        if parts.netloc not in ("", "localhost") or not parts.path:
            raise UsageError(f"tracking URI {_shown(uri)}: a file store is a local folder, "
                             "as file:///absolute/folder")
        return uri
    if not parts.hostname:
        raise UsageError(f"tracking URI {_shown(uri)} names no host")
    return uri


def check_store(uri: str, timeout: float = 3.0) -> None:
    """Probe the store at resolved ``uri`` within about ``timeout`` seconds: the SQLite file
    is a database (or can become one) and is writable, the folder of a file store exists and
    is writable, a database's driver is installed and its server accepts connections, a
    tracking server answers its health check."""
    scheme = uri.split("://", 1)[0].lower() if "://" in uri else uri
    base = scheme.split("+", 1)[0]
    if base == "sqlite":
        _check_sqlite(uri, Path(uri[len("sqlite:///"):]), timeout)
    elif base == "file":
        _check_file_store(uri)
    elif base in DATABASES:
        _check_database(uri, base, timeout)
    elif base in ("http", "https"):
        _check_server(uri, timeout)
    elif base == "databricks":
        configured = os.environ.get("DATABRICKS_HOST") or (Path.home() / ".databrickscfg"
                                                           ).is_file()
        if not configured:
            raise UsageError(f"tracking URI {uri!r}: no Databricks workspace is configured "
                             "(set DATABRICKS_HOST and DATABRICKS_TOKEN, or write "
                             "~/.databrickscfg)")


def _check_sqlite(uri: str, path: Path, timeout: float) -> None:
    def refuse(reason: str) -> UsageError:
        return UsageError(f"tracking store {_shown(uri)}: {reason}")

    if any(len(part.encode()) > 255 for part in path.parts):
        raise refuse("a name in its path is longer than the file system allows (255 bytes)")
    if path.is_dir():
        raise refuse(f"{path} is a folder, not a database file")
    if not path.parent.is_dir():
        raise refuse(f"folder {path.parent} does not exist")
    existed = path.exists()
    try:
        connection = sqlite3.connect(f"file:{path}?mode=rwc", uri=True, timeout=timeout)
        try:
            connection.execute("SELECT name FROM sqlite_master LIMIT 1").fetchall()
            connection.execute("BEGIN IMMEDIATE")  # takes the write lock: proves writable
            connection.rollback()
        finally:
            connection.close()
    except sqlite3.DatabaseError as exc:
        if not existed:
            path.unlink(missing_ok=True)
        reason = str(exc)
        if "not a database" in reason:
            raise refuse(f"{path} is not an SQLite database") from None
        raise refuse(f"{path} cannot be opened for writing ({reason})") from None
    except OSError as exc:
        raise refuse(f"{path}: {exc.strerror or exc}") from None


def _check_file_store(uri: str) -> None:
    if os.environ.get("MLFLOW_ALLOW_FILE_STORE", "").lower() not in ("1", "true"):
        raise UsageError(f"tracking URI {_shown(uri)} is an MLflow file store, which MLflow "
                         "only opens with MLFLOW_ALLOW_FILE_STORE=true; use a database, "
                         "such as sqlite:///mlflow.db")
    folder = Path(urllib.request.url2pathname(urllib.parse.urlsplit(uri).path))
    existing = folder if folder.exists() else folder.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK):
        raise UsageError(f"tracking store {_shown(uri)}: {existing} is not a writable folder")


def _check_database(uri: str, base: str, timeout: float) -> None:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        url = make_url(uri)
        url.get_dialect().import_dbapi()
    except (ArgumentError, NoSuchModuleError, ValueError) as exc:
        raise UsageError(f"tracking URI {_shown(uri)} is malformed: {exc}") from None
    except ImportError as exc:
        module = (exc.name or str(exc)).split(".")[0]
        raise UsageError(f"tracking store {_shown(uri)} needs the database driver "
                         f"{module!r}: pip install {_PACKAGES.get(module, module)}") from None
    port = url.port or DATABASES[base]
    try:
        socket.create_connection((url.host, port), timeout=timeout).close()
    except OSError as exc:
        raise UsageError(f"cannot reach the {base} server of tracking store "
                         f"{_shown(uri)} at {url.host}:{port}: {exc.strerror or exc}") from None


def _check_server(uri: str, timeout: float) -> None:
    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout):  # noqa: S310
            pass
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise UsageError(f"cannot reach the MLflow tracking server at {_shown(uri)}: "
                         f"{getattr(exc, 'reason', exc)}") from None
