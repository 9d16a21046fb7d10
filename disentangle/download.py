"""Downloading dataset files: streamed, checksummed, and written atomically."""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from tqdm import tqdm

from disentangle.errors import UsageError


def download(url: str, dest: Path, checksum: str | None = None, timeout: float = 30.0,
             algorithm: str = "sha256") -> Path:
    """Fetch ``url`` into ``dest``, verify its checksum, then move it into place atomically.

    ``checksum`` is the published hex digest under ``algorithm`` (any name ``hashlib``
    knows; SHA-256 unless a dataset only publishes another). A failed or interrupted
    download, or a checksum mismatch, leaves no file at ``dest``.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.new(algorithm)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                response = urllib.request.urlopen(url, timeout=timeout)  # noqa: S310
            except (urllib.error.URLError, OSError) as exc:
                raise UsageError(f"cannot download {url}: {exc}") from None
            with response, tqdm(total=int(response.headers.get("Content-Length") or 0) or None,
                                unit="B", unit_scale=True, desc=dest.name) as bar:
                while chunk := response.read(1 << 20):
                    out.write(chunk)
                    digest.update(chunk)
                    bar.update(len(chunk))
            out.flush()
            os.fsync(out.fileno())
        if checksum is not None and digest.hexdigest() != checksum.lower():
            raise UsageError(f"checksum mismatch for {url}: expected {algorithm} {checksum}, "
                             f"got {digest.hexdigest()}; the file was not saved")
        os.replace(tmp_name, dest)
    finally:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
    return dest
