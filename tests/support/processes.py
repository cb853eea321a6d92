"""The process table from /proc, for tests and benchmarks that follow a process's children."""

from __future__ import annotations

from pathlib import Path


def process_table() -> dict[int, list[str]]:
    """pid → the fields of /proc/PID/stat after the command (state, parent pid, …) of every process."""
    table = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = process_table_entry(int(entry.name))
            if fields is not None:
                table[int(entry.name)] = fields
    return table


def descendants(pid: int, table: dict[int, list[str]] | None = None) -> set[int]:
    """The processes below ``pid``: its children, theirs, and so on (from ``table``, read now by default)."""
    table = process_table() if table is None else table
    children: dict[int, list[int]] = {}
    for child, fields in table.items():
        children.setdefault(int(fields[1]), []).append(child)
    found: set[int] = set()
    frontier = [pid]
    while frontier:
        for child in children.get(frontier.pop(), []):
            if child not in found:
                found.add(child)
                frontier.append(child)
    return found


def running(pid: int) -> bool:
    """Whether ``pid`` is a process that has not ended (a zombie has ended, reaped or not)."""
    fields = process_table_entry(pid)
    return fields is not None and fields[0] != "Z"


def process_table_entry(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command; ``None`` when there is no such process."""
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
