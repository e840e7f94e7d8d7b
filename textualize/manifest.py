"""On-disk manifests: atomic writes, JSONL logs that survive interruption, stable hashes.

Every stage reads and writes these, so stages compose, cache and resume: a finished record is on
disk in full or not at all (write to a temporary file in the same folder, fsync, rename).

Any file name the OS allows survives: a name that is not valid UTF-8 (a legacy Latin-1 archive)
arrives in Python as a str with surrogate escapes (``os.fsdecode``), which strict UTF-8 cannot
encode. JSON is written as UTF-8 with such lone surrogates as JSON ``\\udcXX`` escapes: valid JSON
that reads back as the same str, and ``os.fsencode`` of it gives the original bytes.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable, Iterator


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def json_bytes(obj: Any, indent: int | None = 1, **kw: Any) -> bytes:
    """UTF-8 JSON; lone surrogates (undecodable file-name bytes) become ``\\udcXX`` escapes.

    Outside strings ``json.dumps`` emits ASCII only, so the only unencodable characters are
    surrogates inside strings, and ``backslashreplace`` writes exactly their JSON escape."""
    text = json.dumps(obj, indent=indent, ensure_ascii=False, allow_nan=False, **kw)
    return text.encode("utf-8", errors="backslashreplace")


def atomic_write_json(path: str | Path, obj: Any, indent: int | None = 1) -> None:
    atomic_write_bytes(path, json_bytes(obj, indent=indent) + b"\n")


def printable(name: Any) -> str:
    """A str that any terminal can print: undecodable file-name bytes (surrogate escapes) shown as
    ``\\xNN``, other lone surrogates as ``\\uXXXX``; everything else unchanged."""
    text = str(name)
    if not any("\ud800" <= ch <= "\udfff" for ch in text):
        return text
    return "".join(
        (f"\\x{ord(ch) - 0xDC00:02x}" if "\udc80" <= ch <= "\udcff" else f"\\u{ord(ch):04x}") if "\ud800" <= ch <= "\udfff" else ch
        for ch in text
    )


def read_json(path: str | Path) -> Any:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def stable_hash(obj: Any, length: int = 16) -> str:
    """Hash of a JSON-able object, independent of dict order (for cache keys)."""
    blob = json.dumps(obj, sort_keys=True, ensure_ascii=False, default=str).encode("utf-8", "surrogatepass")
    return hashlib.sha256(blob).hexdigest()[:length]


class JsonlLog:
    """Append-only JSONL file: one line per finished record, flushed and fsynced per line.

    A line cut off by a crash is ignored on reading, so a resumed run sees exactly the records
    that finished.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def __iter__(self) -> Iterator[dict]:
        if not self.path.exists():
            return
        with open(self.path, encoding="utf-8") as f:
            for line in f:
                line = line.strip()
                if not line:
                    continue
                try:
                    yield json.loads(line)
                except json.JSONDecodeError:
                    continue  # a torn last line from an interrupted run

    def append(self, record: dict) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = json_bytes(record, indent=None, default=str) + b"\n"  # encoded before the file is touched
        with open(self.path, "ab") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())

    def extend(self, records: Iterable[dict]) -> None:
        for r in records:
            self.append(r)
