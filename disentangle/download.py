"""Downloading dataset files: streamed, resumed after a cut, checksummed, written atomically."""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from tqdm import tqdm

from disentangle.errors import UsageError

_CHUNK = 1 << 20


def partial_path(dest: Path) -> Path:
    """Where the bytes of ``dest`` received so far are kept until it is complete."""
    return dest.with_name(f".{dest.name}.part")


def file_digest(path: Path, algorithm: str = "sha256") -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as file:
        while chunk := file.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def download(url: str, dest: Path, checksum: str | None = None, timeout: float = 30.0,
             algorithm: str = "sha256") -> Path:
    """Fetch ``url`` into ``dest``, verify its checksum, then move it into place atomically.

    ``checksum`` is the published hex digest under ``algorithm`` (any name ``hashlib``
    knows). The bytes go to :func:`partial_path` first: a cut download leaves them there,
    and the next call asks the server for the rest only (an HTTP range request; a server
    that ignores it sends the whole file again). A checksum mismatch deletes them. Nothing
    is ever at ``dest`` but the complete, verified file.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = partial_path(dest)
    have = part.stat().st_size if part.is_file() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)  # noqa: S310
    except urllib.error.HTTPError as exc:
        if exc.code != 416 or not have:  # 416: nothing left to send
            raise UsageError(f"cannot download {url}: {exc}") from None
        response = None
    except (urllib.error.URLError, OSError) as exc:
        raise UsageError(f"cannot download {url}: {exc}") from None
    if response is not None:
        resumed = response.status == 206
        total = int(response.headers.get("Content-Length") or 0) + (have if resumed else 0)
        with response, open(part, "ab" if resumed else "wb") as out, tqdm(
                total=total or None, initial=have if resumed else 0, unit="B",
                unit_scale=True, desc=dest.name) as bar:
            try:
                while chunk := response.read(_CHUNK):
                    out.write(chunk)
                    bar.update(len(chunk))
            except OSError as exc:
                raise UsageError(f"download of {url} was cut ({exc}); run the same command "
                                 "again to continue it") from None
            out.flush()
            os.fsync(out.fileno())
    if checksum is not None:
        got = file_digest(part, algorithm)
        if got != checksum.lower():
            part.unlink()
            raise UsageError(f"checksum mismatch for {url}: expected {algorithm} {checksum}, "
                             f"got {got}; the file was not saved")
    os.replace(part, dest)
    return dest


def fetch_file(dataset: str, urls: Sequence[str], dest: Path, checksum: str | None,
               algorithm: str = "sha256") -> Path:
    """``dest`` from the first of ``urls`` (the official address, then its documented
    alternatives) that delivers it; a file already there with the right checksum is kept.
    Returns the folder holding ``dest``."""
    dest = Path(dest)
    if dest.is_file() and (checksum is None or file_digest(dest, algorithm) == checksum):
        return dest.parent
    errors = []
    for url in urls:
        try:
            download(url, dest, checksum, algorithm=algorithm)
            return dest.parent
        except UsageError as exc:
            if "was cut" in str(exc):
                raise
            errors.append(str(exc))
    raise UsageError(f"could not fetch {dest.name} for {dataset}: " + "; ".join(errors))
