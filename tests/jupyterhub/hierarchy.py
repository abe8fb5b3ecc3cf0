"""The example hierarchy of hierarchy.yml, merged by the role's filter, for the tests."""
from __future__ import annotations

from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent


def layers():
    """The four layers of hierarchy.yml: common, deployments, environment, secrets."""
    return yaml.safe_load((HERE / "hierarchy.yml").read_text(encoding="utf-8"))


def merged():
    """{name: merged tree} of the example deployments."""
    from ansible_collections.sciops.platform.plugins.filter.jupyterhub import jupyterhub_deployments

    data = layers()
    trees = jupyterhub_deployments(data["deployments"], data["common"], data["environment"], data["secrets"])
    return {tree["name"]: tree for tree in trees}
