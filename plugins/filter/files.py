"""Filters for the no-op fast path of directory lists: read the type, owner, group and mode of
every directory with one stat command, and hand the file module only the directories that are
missing or differ (a loop of file tasks costs one round trip per directory even when nothing
changes). Drift is still found: anything stat reports differently from the item is fixed."""
from __future__ import annotations

from ansible.errors import AnsibleFilterError

# One line per path that exists: type|owner|group|octal mode|path (the path last: it may hold '|').
_FORMAT = "%F|%U|%G|%a|%n"


def _paths(items):
    if isinstance(items, (str, bytes)) or not isinstance(items, (list, tuple)):
        raise AnsibleFilterError(f"expected a list of directory items (dicts with a path), got {items!r}")
    paths = []
    for item in items:
        path = item.get("path") if isinstance(item, dict) else None
        if not isinstance(path, str) or not path.startswith("/"):
            raise AnsibleFilterError(f"each directory item needs an absolute path, got {item!r}")
        paths.append(path)
    return paths


def directory_stat_argv(items):
    """The stat command line that describes each item's path (missing paths print nothing;
    stat's exit status is then 1, so the task reading it sets failed_when: false)."""
    return ["stat", "--format=" + _FORMAT, "--"] + _paths(items)


def _mode(value, item):
    try:
        return int(str(value), 8)
    except ValueError:
        raise AnsibleFilterError(f"directory item {item!r}: mode must be octal, such as '0750'") from None


def directories_to_fix(stat_stdout, items):
    """The items whose path is missing, is not a directory, or has another owner, group or mode
    than the item names (an owner, group or mode the item leaves out is not compared)."""
    _paths(items)
    seen = {}
    for line in (stat_stdout or "").splitlines():
        parts = line.split("|", 4)
        if len(parts) == 5:
            kind, owner, group, mode, path = parts
            seen[path] = (kind, owner, group, mode)
    fix = []
    for item in items:
        found = seen.get(item["path"])
        if found is None or found[0] != "directory":
            fix.append(item)
            continue
        _kind, owner, group, mode = found
        if ("owner" in item and str(item["owner"]) != owner) or ("group" in item and str(item["group"]) != group):
            fix.append(item)
        elif "mode" in item and _mode(item["mode"], item) != _mode(mode, item):
            fix.append(item)
    return fix


class FilterModule(object):
    def filters(self):
        return {"directory_stat_argv": directory_stat_argv, "directories_to_fix": directories_to_fix}
