"""The Kubernetes rendering: both example hubs (tests/jupyterhub/hierarchy.yml) as Zero to
JupyterHub values, rendered by `helm template` with the chart in ../shared/upstream/z2jh (its
values schema refuses an unknown key), and a parity check that the chart's rendering and the
single-host settings carry the same authenticator, limits, culler settings and storage choice.
helm comes from set-up (scripts/ensure-helm.sh puts it in .venv/bin)."""
from __future__ import annotations

import base64
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from ansible_collections.sciops.platform.plugins.filter.jupyterhub import (
    jupyterhub_culler_args, jupyterhub_deployments, jupyterhub_settings, jupyterhub_z2jh_values)
from tests.jupyterhub.hierarchy import merged

ROOT = Path(__file__).resolve().parents[4]
CHART = ROOT.parent / "shared" / "upstream" / "z2jh" / "jupyterhub"
PATHS = {"state_dir": "/var/lib/jupyterhub/x", "venv": "/opt/jupyterhub/hub",
         "user_venv": "/opt/jupyterhub/envs/default", "proxy_api_url": "http://127.0.0.1:8001"}
PROFILES = ("public", "private")


def helm():
    found = ROOT / ".venv" / "bin" / "helm"
    if found.exists():
        return str(found)
    on_path = shutil.which("helm")
    assert on_path, "helm is missing: run scripts/ensure-helm.sh (make setup) to install it into .venv/bin"
    return on_path


def helm_template(values, tmp_path, name="hub"):
    assert (CHART / "values.schema.json").exists(), f"the chart is missing: {CHART}"
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump(values), encoding="utf-8")
    env = dict(os.environ, HELM_CACHE_HOME=str(tmp_path / "cache"), HELM_CONFIG_HOME=str(tmp_path / "config"),
               HELM_DATA_HOME=str(tmp_path / "data"))
    done = subprocess.run([helm(), "template", name, str(CHART), "-f", str(path), "--namespace", "jh"],
                          capture_output=True, text=True, env=env, timeout=120, check=False)
    return done


def rendered(values, tmp_path):
    done = helm_template(values, tmp_path)
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def hub_values(docs):
    """The values the chart hands to its hub (the hub Secret's values.yaml)."""
    secret = next(d for d in docs if d["kind"] == "Secret" and d["metadata"]["name"] == "hub")
    return yaml.safe_load(base64.b64decode(secret["data"]["values.yaml"]))


@pytest.fixture(scope="module")
def trees():
    return merged()


@pytest.mark.parametrize("profile", PROFILES)
def test_helm_template_accepts_the_values(profile, trees, tmp_path):
    docs = rendered(jupyterhub_z2jh_values(trees[profile]), tmp_path)
    kinds = {d["kind"] for d in docs}
    assert {"Deployment", "Secret", "Service", "ConfigMap"} <= kinds


def test_the_schema_refuses_an_unknown_key(trees, tmp_path):
    values = jupyterhub_z2jh_values(trees["public"])
    values["singleuser"]["memroy"] = {"limit": "1G"}
    done = helm_template(values, tmp_path)
    assert done.returncode != 0
    assert "memroy" in done.stderr and "not allowed" in done.stderr


def test_kubernetes_values_layer_merges_last(trees, tmp_path):
    tree = jupyterhub_deployments([{"name": "public", "profile": "public", "kubernetes": {
        "values": {"proxy": {"service": {"type": "ClusterIP"}}, "cull": {"concurrency": 3}}}}])[0]
    values = jupyterhub_z2jh_values(tree)
    assert values["proxy"] == {"service": {"type": "ClusterIP"}}
    assert values["cull"]["concurrency"] == 3 and values["cull"]["timeout"] == 600
    docs = rendered(values, tmp_path)
    proxy = next(d for d in docs if d["kind"] == "Service" and d["metadata"]["name"] == "proxy-public")
    assert proxy["spec"]["type"] == "ClusterIP"


@pytest.mark.parametrize("profile", PROFILES)
def test_both_renderings_carry_the_same_settings(profile, trees, tmp_path):
    tree = trees[profile]
    chart = hub_values(rendered(jupyterhub_z2jh_values(tree), tmp_path))
    host = jupyterhub_settings(tree, PATHS)
    traits = host["traits"]

    # the authenticator: class, who is allowed, admins, allow_all (only tmp)
    for cls in ("JupyterHub",):
        assert chart["hub"]["config"][cls]["authenticator_class"] == traits[cls]["authenticator_class"]
    assert chart["hub"]["config"]["Authenticator"] == traits["Authenticator"]
    own = {"public": "TmpAuthenticator", "private": "GitHubOAuthenticator"}[profile]
    if own in traits:
        host_own = dict(traits[own])
        chart_own = dict(chart["hub"]["config"][own])
        assert chart_own.pop("client_secret") == tree["auth"]["client_secret"]
        assert chart_own == host_own
        assert host["secret_env"] == {"JUPYTERHUB_OAUTH_CLIENT_SECRET": f"{own}.client_secret"}

    # the limits and the default UI
    assert chart["singleuser"]["memory"]["limit"] == traits["SystemdSpawner"]["mem_limit"]
    assert chart["singleuser"]["cpu"]["limit"] == traits["SystemdSpawner"]["cpu_limit"]
    assert chart["singleuser"]["defaultUrl"] == traits["Spawner"]["default_url"] == "/lab"
    assert chart["singleuser"]["allowPrivilegeEscalation"] is (not traits["SystemdSpawner"]["disable_user_sudo"])

    # the culler: the chart's values and the single-host service's flags
    cull = chart["cull"]
    flags = dict(a[2:].split("=", 1) for a in jupyterhub_culler_args(tree))
    service = {s["name"]: s for s in host["services"]}["idle-culler"]
    assert all(flag in service["command"] for flag in jupyterhub_culler_args(tree))
    assert cull["enabled"] is True
    assert str(cull["timeout"]) == flags["timeout"]
    assert str(cull["every"]) == flags["cull-every"]
    assert cull["maxAge"] == int(flags.get("max-age", 0))
    assert cull["users"] is (flags["cull-users"] == "True")

    # the storage choice
    storage = chart["singleuser"]["storage"]
    if tree["storage"]["type"] == "none":
        assert storage["type"] == "none"
        assert traits["SystemdSpawner"]["dynamic_users"] is True and host["delete_state_dirs"] is True
    else:
        assert storage["type"] == "dynamic" and storage["capacity"] == tree["storage"]["capacity"]
        assert traits["SystemdSpawner"]["dynamic_users"] is False and host["system_users"]


def test_the_profiles_differ_where_the_seeds_say(trees, tmp_path):
    public = hub_values(rendered(jupyterhub_z2jh_values(trees["public"]), tmp_path / "a"))
    private = hub_values(rendered(jupyterhub_z2jh_values(trees["private"]), tmp_path / "b"))
    assert public["cull"]["timeout"] == 600 and public["cull"]["maxAge"] == 28800 and public["cull"]["users"] is True
    assert private["cull"]["timeout"] == 1800 and private["cull"]["users"] is False
    assert public["singleuser"]["storage"]["type"] == "none"
    assert private["singleuser"]["storage"]["type"] == "dynamic"
    assert public["singleuser"]["memory"] == {"limit": "1G", "guarantee": "128M"}
    assert private["singleuser"]["memory"] == {"limit": "2G", "guarantee": "128M"}, "the staging layer's limit"


def test_shared_data_claim_is_mounted_read_only(tmp_path):
    tree = jupyterhub_deployments([{"name": "public", "profile": "public",
                                    "shared_data": {"claim": "datasets", "mount_path": "/srv/data"}}])[0]
    docs = rendered(jupyterhub_z2jh_values(tree), tmp_path)
    storage = hub_values(docs)["singleuser"]["storage"]
    assert storage["extraVolumes"] == [{"name": "shared-data",
                                        "persistentVolumeClaim": {"claimName": "datasets", "readOnly": True}}]
    assert storage["extraVolumeMounts"][0]["readOnly"] is True
