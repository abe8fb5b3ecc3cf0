"""plugins/lookup/source_digest.py: the digest that decides whether a source is copied again."""
from __future__ import annotations

import os

import pytest

from ansible_collections.sciops.platform.plugins.lookup.source_digest import LookupModule, digest


def tree(root, files):
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    return root


def test_same_tree_same_digest_and_caches_are_ignored(tmp_path):
    a = tree(tmp_path / "a", {"app/main.py": "x = 1\n", "requirements.txt": "uvicorn\n"})
    b = tree(tmp_path / "b", {"requirements.txt": "uvicorn\n", "app/main.py": "x = 1\n",
                              "app/__pycache__/main.cpython-311.pyc": "junk", "app/old.pyc": "junk"})
    assert digest(str(a)) == digest(str(b))
    assert LookupModule().run([str(a), str(b)]) == [digest(str(a))] * 2


@pytest.mark.parametrize("change", ["content", "name", "mode", "new file"])
def test_any_change_gives_another_digest(tmp_path, change):
    root = tree(tmp_path / "src", {"app/main.py": "x = 1\n"})
    before = digest(str(root))
    if change == "content":
        (root / "app/main.py").write_text("x = 2\n")
    elif change == "name":
        (root / "app/main.py").rename(root / "app/other.py")
    elif change == "mode":
        os.chmod(root / "app/main.py", 0o755)
    else:
        (root / "app/extra.py").write_text("")
    assert digest(str(root)) != before


def test_a_file_is_hashed_and_a_missing_path_is_an_error(tmp_path):
    archive = tmp_path / "a.tar.gz"
    archive.write_bytes(b"\x1f\x8b archive")
    import hashlib
    assert digest(str(archive)) == hashlib.sha256(b"\x1f\x8b archive").hexdigest()
    with pytest.raises(Exception, match="neither a file nor a directory"):
        digest(str(tmp_path / "missing"))
