"""The incremental log of a sweep (``out=``): JSON lines, one per finished task.

The first line holds the sweep's configuration; every other line ``{"rows": [...]}`` the
rows of one finished task. A re-run with the same file reads the finished layer x setting
pairs and skips them; a pair logged twice (a task that ran twice) counts once. A last
line cut short by an interruption is ignored and overwritten.
"""

from __future__ import annotations

import json
import os

__all__ = ["SweepLog", "parse_log", "row_key"]


def row_key(row: dict) -> tuple:
    """The layer x setting a row belongs to."""
    return (row["layer"], float(row["prune"]), row["quantizer"], int(row["levels"]))


def _normal(config: dict) -> dict:
    return json.loads(json.dumps(config))


def parse_log(text: str, where: str) -> tuple[dict | None, dict[tuple, list[dict]]]:
    """``(configuration, {layer x setting key: rows})`` of a log's text."""
    config = None
    done: dict[tuple, list[dict]] = {}
    lines = text.split("\n")
    complete = text.endswith("\n")
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            if i == len(lines) - 1 and not complete:
                break  # a line cut short by an interruption
            raise ValueError(f"{where}: line {i + 1} is not JSON; not a sweep log") from None
        if not isinstance(entry, dict):
            raise ValueError(f"{where}: line {i + 1} is not a JSON object; not a sweep log")
        if "sweep" in entry:
            config = entry["sweep"]
            continue
        rows = entry.get("rows")
        if not isinstance(rows, list):
            raise ValueError(f"{where}: line {i + 1} has no 'rows' list; not a sweep log")
        by_key: dict[tuple, list[dict]] = {}
        for row in rows:
            try:
                by_key.setdefault(row_key(row), []).append(row)
            except (KeyError, TypeError, ValueError):
                raise ValueError(f"{where}: line {i + 1} holds a malformed row") from None
        for key, group in by_key.items():
            done.setdefault(key, group)  # a pair logged twice counts once
    return config, done


class SweepLog:
    """Append-only log of finished tasks, flushed after every line.

    Raises ValueError when the file holds a sweep of another configuration (another
    network, changed files, other formats or options).
    """

    def __init__(self, path: str | os.PathLike, config: dict) -> None:
        self.path = os.fspath(path)
        self.config = _normal(config)
        self.done: dict[tuple, list[dict]] = {}
        text = ""
        if os.path.exists(self.path):
            with open(self.path, encoding="utf-8") as fp:
                text = fp.read()
        old, self.done = parse_log(text, self.path)
        if text.strip() and old is None:
            raise ValueError(f"{self.path}: not a sweep log (no configuration line)")
        if old is not None and old != self.config:
            diff = sorted(k for k in {*old, *self.config} if old.get(k) != self.config.get(k))
            raise ValueError(f"{self.path}: holds a sweep with other {', '.join(diff)}; "
                             "give another out= file or delete this one")
        if not text.strip():
            with open(self.path, "w", encoding="utf-8") as fp:
                fp.write(json.dumps({"sweep": self.config}) + "\n")
        elif not text.endswith("\n"):  # drop a last line cut short
            os.truncate(self.path, len(text[: text.rfind("\n") + 1].encode("utf-8")))
        self._fp = open(self.path, "a", encoding="utf-8")  # noqa: SIM115

    def write(self, rows: list[dict]) -> None:
        self._fp.write(json.dumps({"rows": rows}, separators=(",", ":")) + "\n")
        self._fp.flush()

    def close(self) -> None:
        self._fp.close()

    def __enter__(self) -> SweepLog:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
