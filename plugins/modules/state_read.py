#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: sciops.platform maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: state_read
short_description: Read a host's small state files, directory attributes and folder listings in one call
version_added: 0.1.0
description:
  - Reads what a role needs to decide whether anything must change, in one task instead of one
    C(slurp), C(stat) or C(find) task each. It reads the text of small files, the type, owner, group
    and mode of paths, and the entries of folders that match a pattern.
  - Never changes anything; a path that does not exist is reported as missing, not as an error.
  - The attributes come in the lines C(stat --format='%F|%U|%G|%a|%n') prints, so the filter
    P(sciops.platform.directories_to_fix#filter) reads them as it reads that command's output.
author:
  - sciops.platform maintainers (@sciops)
attributes:
  check_mode:
    support: full
    description: Reads in check mode too (it never writes).
  diff_mode:
    support: none
    description: Nothing changes, so there is nothing to show.
options:
  files:
    description:
      - Name to absolute path of the files to read. Each comes back under its name in RV(files), as
        text, or V(null) when the file does not exist.
      - A file larger than O(max_size) bytes fails the task (these are state files, not data).
    type: dict
    default: {}
  stat:
    description:
      - Absolute paths whose type, owner, group and mode are wanted (symbolic links are not followed).
    type: list
    elements: path
    default: []
  listings:
    description:
      - Name to folder and pattern. Each comes back under its name in RV(listings) as the entries of
        the folder whose name matches the shell pattern (a missing folder lists nothing).
    type: dict
    default: {}
  max_size:
    description:
      - The largest file O(files) may read, in bytes.
    type: int
    default: 65536
'''

EXAMPLES = r'''
- name: Read a service's record, maintenance status, directories and releases at once
  sciops.platform.state_read:
    files:
      record: /etc/sciops/services/api/blue.json
      maintenance: /etc/sciops/services/api/maintenance
    stat: [/srv/api, /srv/api/releases]
    listings:
      releases: {path: /srv/api/releases, pattern: "blue-*"}
  register: state
'''

RETURN = r'''
files:
  description: Each name of O(files) with the file's text (UTF-8; undecodable bytes replaced), or V(null) when it is missing.
  returned: always
  type: dict
  sample: {"record": "{\"version\": \"v3\"}\n", "maintenance": null}
stat:
  description:
    - One line per existing path of O(stat), C(type|owner|group|mode|path) as
      C(stat --format='%F|%U|%G|%a|%n') prints it (owner and group V(UNKNOWN) when they have no name).
  returned: always
  type: str
  sample: "directory|root|api|755|/srv/api\n"
listings:
  description: Each name of O(listings) with its entries, sorted by path.
  returned: always
  type: dict
  contains:
    path:
      description: The entry's absolute path.
      type: str
    type:
      description: V(directory), V(file), V(link) or V(other) (links are not followed).
      type: str
    mtime:
      description: Its modification time, seconds since the epoch.
      type: float
  sample: {"releases": [{"path": "/srv/api/releases/blue-v3", "type": "directory", "mtime": 1765000000.0}]}
'''

import fnmatch
import grp
import os
import pwd
import stat

from ansible.module_utils.basic import AnsibleModule


def _type(mode, size):
    """The words stat's %F prints for the common types."""
    if stat.S_ISDIR(mode):
        return "directory"
    if stat.S_ISREG(mode):
        return "regular file" if size else "regular empty file"
    if stat.S_ISLNK(mode):
        return "symbolic link"
    if stat.S_ISFIFO(mode):
        return "fifo"
    if stat.S_ISSOCK(mode):
        return "socket"
    if stat.S_ISCHR(mode):
        return "character special file"
    if stat.S_ISBLK(mode):
        return "block special file"
    return "unknown"


def _name(lookup, number):
    try:
        return lookup(number)[0]
    except KeyError:
        return "UNKNOWN"


def stat_line(path):
    """The line stat --format='%F|%U|%G|%a|%n' prints for path, or None when it does not exist."""
    try:
        found = os.lstat(path)
    except FileNotFoundError:
        return None
    except NotADirectoryError:
        return None
    return "|".join([_type(found.st_mode, found.st_size), _name(pwd.getpwuid, found.st_uid),
                     _name(grp.getgrgid, found.st_gid), format(stat.S_IMODE(found.st_mode), "o"), path])


def read_file(path, max_size):
    """The file's text, or None when it does not exist; a ValueError when it is too large."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(max_size + 1)
    except (FileNotFoundError, NotADirectoryError):
        return None
    if len(data) > max_size:
        raise ValueError(f"{path} is larger than max_size ({max_size} bytes)")
    return data.decode("utf-8", errors="replace")


def listing(folder, pattern):
    """The entries of folder whose name matches pattern, sorted by path ([] when it is missing)."""
    try:
        names = os.listdir(folder)
    except (FileNotFoundError, NotADirectoryError):
        return []
    entries = []
    for name in sorted(fnmatch.filter(names, pattern)):
        path = os.path.join(folder, name)
        try:
            found = os.lstat(path)
        except FileNotFoundError:
            continue
        kind = ("directory" if stat.S_ISDIR(found.st_mode) else "file" if stat.S_ISREG(found.st_mode)
                else "link" if stat.S_ISLNK(found.st_mode) else "other")
        entries.append({"path": path, "type": kind, "mtime": found.st_mtime})
    return entries


def _absolute(module, what, path):
    if not isinstance(path, str) or not os.path.isabs(path):
        module.fail_json(msg=f"{what}: {path!r} is not an absolute path; give each path from the root (/...)")
    return path


def main():
    module = AnsibleModule(
        argument_spec=dict(
            files=dict(type="dict", default={}),
            stat=dict(type="list", elements="path", default=[]),
            listings=dict(type="dict", default={}),
            max_size=dict(type="int", default=65536),
        ),
        supports_check_mode=True,
    )
    params = module.params
    if params["max_size"] < 1:
        module.fail_json(msg="max_size must be at least 1 (bytes)")
    files = {}
    for name, path in params["files"].items():
        try:
            files[name] = read_file(_absolute(module, f"files.{name}", path), params["max_size"])
        except ValueError as error:
            module.fail_json(msg=f"files.{name}: {error}; raise max_size or read the file another way")
        except OSError as error:
            module.fail_json(msg=f"files.{name}: cannot read {path}: {error.strerror}")
    lines = [stat_line(_absolute(module, "stat", path)) for path in params["stat"]]
    listings = {}
    for name, spec in params["listings"].items():
        if not isinstance(spec, dict) or not spec.get("path") or not spec.get("pattern"):
            module.fail_json(msg=f"listings.{name}: give a dict with path (a folder) and pattern (such as 'blue-*')")
        listings[name] = listing(_absolute(module, f"listings.{name}.path", spec["path"]), str(spec["pattern"]))
    module.exit_json(changed=False, files=files, stat="".join(line + "\n" for line in lines if line is not None),
                     listings=listings)


if __name__ == "__main__":
    main()
