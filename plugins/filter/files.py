"""Filters for the no-op fast path of directory and file lists: read the type, owner, group and
mode of every directory (and the SHA-1 of every file) with one command, and hand the file or copy
module only the ones that are missing or differ (a loop of file or copy tasks costs one round trip
per item even when nothing changes). Drift is still found: anything the command reports
differently from the item is written again."""
from __future__ import annotations

import re

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
    seen = _stat_entries((stat_stdout or "").splitlines())
    fix = []
    for item in items:
        found = seen.get(item["path"])
        if found is None or found[0] != "directory" or _attributes_differ(item, found):
            fix.append(item)
    return fix


def _stat_entries(lines):
    """{path: (type, owner, group, mode)} from the lines stat printed in _FORMAT."""
    seen = {}
    for line in lines:
        parts = line.split("|", 4)
        if len(parts) == 5:
            kind, owner, group, mode, path = parts
            seen[path] = (kind, owner, group, mode)
    return seen


def _attributes_differ(item, found):
    """Whether stat's owner, group or mode differ from the item's (one the item leaves out is not compared)."""
    _kind, owner, group, mode = found
    if ("owner" in item and str(item["owner"]) != owner) or ("group" in item and str(item["group"]) != group):
        return True
    return "mode" in item and _mode(item["mode"], item) != _mode(mode, item)


# sha1sum prints "<sha1>  <path>" for each readable file, then stat one line per existing path;
# missing paths print nothing (the exit status is forced to 0: the filter finds them missing).
_SHA1_LINE = re.compile(r"^[0-9a-f]{40}  ")
_FILES_SCRIPT = 'sha1sum -- "$@" 2>/dev/null; stat --format="' + _FORMAT + '" -- "$@" 2>/dev/null; exit 0'


def file_stat_argv(items):
    """The command line that prints the SHA-1 of each item's file, then its type, owner, group
    and mode (one command for the whole list; a missing file prints nothing)."""
    return ["sh", "-c", _FILES_SCRIPT, "sh"] + _paths(items)


def files_to_write(stdout, items):
    """The items whose file is missing, is not a regular file, has other content (the item's
    checksum: the SHA-1 of the content the task writes) or another owner, group or mode."""
    _paths(items)
    lines = (stdout or "").splitlines()
    sums = {line[42:]: line[:40] for line in lines if _SHA1_LINE.match(line)}
    seen = _stat_entries(line for line in lines if not _SHA1_LINE.match(line))
    write = []
    for item in items:
        if not isinstance(item.get("checksum"), str) or len(item["checksum"]) != 40:
            raise AnsibleFilterError(f"file item {item['path']}: checksum must be the SHA-1 (40 hex digits) of its content")
        found = seen.get(item["path"])
        if (found is None or found[0] not in ("regular file", "regular empty file")
                or sums.get(item["path"]) != item["checksum"] or _attributes_differ(item, found)):
            write.append(item)
    return write


class FilterModule(object):
    def filters(self):
        return {"directory_stat_argv": directory_stat_argv, "directories_to_fix": directories_to_fix,
                "file_stat_argv": file_stat_argv, "files_to_write": files_to_write}
