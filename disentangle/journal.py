"""Tracking records that wait on this machine for a store that could not be reached."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any


class Journal:
    """Tracking records of one run that could not be delivered, kept on disk in order.

    Each record is a JSON line; files to upload are copied into the journal, so they
    survive the temporary folders they came from. The store's URI is kept beside them, so
    ``disentangle sync`` knows where they belong.
    """

    def __init__(self, folder: Path, uri: str):
        self.folder, self.uri = Path(folder), uri
        self.path = self.folder / "records.jsonl"

    def records(self) -> list[dict[str, Any]]:
        if not self.path.is_file():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line]

    def add(self, action: str, payload: dict[str, Any]) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / "store.txt").write_text(self.uri)
        payload = dict(payload)
        if action in ("artifact", "artifacts"):
            source = Path(payload["path"])
            copy = self.folder / "files" / f"{len(self.records()):06d}" / source.name
            if source.is_dir():
                shutil.copytree(source, copy)
            else:
                copy.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, copy)
            payload["path"] = str(copy.relative_to(self.folder))
        with self.path.open("a") as handle:
            handle.write(json.dumps({"action": action, **payload}) + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    def payload(self, record: dict[str, Any]) -> dict[str, Any]:
        """A record's arguments, with journal-relative file paths made absolute."""
        payload = {k: v for k, v in record.items() if k != "action"}
        if record["action"] in ("artifact", "artifacts"):
            payload["path"] = str(self.folder / payload["path"])
        return payload

    def keep(self, records: list[dict[str, Any]]) -> None:
        """Replace the journal by ``records`` (the ones still to send); none: remove it."""
        if not records:
            shutil.rmtree(self.folder, ignore_errors=True)
            return
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text("".join(json.dumps(r) + "\n" for r in records))
        os.replace(tmp, self.path)
