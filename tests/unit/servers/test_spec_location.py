"""Where the test servers find the providers' API specifications (tests/servers/spec.py: locate)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.servers import spec

ROOT = Path(__file__).resolve().parents[3]
PUBLISHED_GODADDY = {"swagger": "2.0", "paths": {
    "/v1/domains/{domain}/records": {"put": {"operationId": "recordReplace"}},
    "/v1/domains/{domain}/records/{type}": {"put": {"operationId": "recordReplaceType"}},
    "/v1/domains/{domain}/records/{type}/{name}": {"get": {
        "operationId": "recordGet", "summary": "Retrieve DNS Records for the specified Domain",
        "parameters": [{"in": "header", "name": "X-Shopper-Id", "type": "string"},
                       {"in": "path", "name": "domain", "required": True, "type": "string"},
                       {"in": "path", "name": "type", "required": True, "type": "string", "enum": ["A", "TXT"]},
                       {"in": "path", "name": "name", "required": True, "type": "string"},
                       {"in": "query", "name": "offset", "type": "integer"}],
        "responses": {"200": {"description": "ok"}}}}}}


def complete(path, marker=""):
    path.mkdir(parents=True, exist_ok=True)
    for name in spec.FILES:
        (path / name).write_text(marker or name)
    return path


class FakeFetch:
    def __init__(self, fail=False):
        self.urls = []
        self.fail = fail

    def __call__(self, url):
        self.urls.append(url)
        if self.fail:
            raise OSError("Name or service not known")
        if url == spec.SOURCES[spec.DIGITALOCEAN_FILE]:
            return b"openapi: 3.0.0\npaths: {}\n"
        return json.dumps(PUBLISHED_GODADDY).encode()


@pytest.fixture
def places(tmp_path):
    return {"beside": tmp_path / "shared" / "api-specs", "env": tmp_path / "mine",
            "environ": {"XDG_CACHE_HOME": str(tmp_path / "cache"), "HOME": str(tmp_path / "home")},
            "cache": tmp_path / "cache" / "sciops" / "api-specs"}


def locate(places, fetch, **environ):
    return spec.locate(environ=dict(places["environ"], **environ), fetch=fetch, beside=places["beside"])


def test_order_env_then_beside_then_cache_then_fetch(places):
    fetch = FakeFetch()
    complete(places["env"])
    complete(places["beside"])
    complete(places["cache"])
    assert locate(places, fetch, SCIOPS_API_SPECS=str(places["env"])) == places["env"]
    assert locate(places, fetch) == places["beside"]
    for name in spec.FILES:
        (places["beside"] / name).unlink()
    assert locate(places, fetch) == places["cache"]
    assert fetch.urls == []


def test_env_var_that_lacks_the_files_stops_with_one_message(places):
    complete(places["beside"])
    with pytest.raises(spec.SpecsNotFound) as exc:
        locate(places, FakeFetch(), SCIOPS_API_SPECS=str(places["env"]))
    assert str(places["env"]) in str(exc.value) and "SCIOPS_API_SPECS" in str(exc.value)


def test_fetched_into_the_cache_when_missing(places):
    fetch = FakeFetch()
    found = locate(places, fetch)
    assert found == places["cache"]
    assert fetch.urls == [spec.SOURCES[spec.DIGITALOCEAN_FILE], spec.SOURCES[spec.GODADDY_FILE]]
    assert sorted(p.name for p in found.iterdir()) == sorted(spec.FILES)
    derived = json.loads((found / spec.GODADDY_LIST_ROUTES_FILE).read_text())
    assert set(derived["paths"]) == set(PUBLISHED_GODADDY["paths"])
    by_type = derived["paths"]["/v1/domains/{domain}/records/{type}"]["get"]
    assert [p["name"] for p in by_type["parameters"]] == ["X-Shopper-Id", "domain", "type"]
    assert by_type["operationId"] == "recordGetByType"
    assert [p["name"] for p in derived["paths"]["/v1/domains/{domain}/records"]["get"]["parameters"]] == ["X-Shopper-Id", "domain"]
    assert json.loads((found / spec.GODADDY_FILE).read_text()) == PUBLISHED_GODADDY
    # the next call uses the cache
    assert locate(places, FakeFetch(fail=True)) == places["cache"]


def test_default_cache_is_under_home_without_xdg(places):
    environ = {"HOME": places["environ"]["HOME"]}
    found = spec.locate(environ=environ, fetch=FakeFetch(), beside=places["beside"])
    assert found == Path(environ["HOME"]) / ".cache" / "sciops" / "api-specs"


def test_offline_without_specs_stops_with_one_message_naming_both_places(places):
    with pytest.raises(spec.SpecsNotFound) as exc:
        locate(places, FakeFetch(fail=True))
    msg = str(exc.value)
    assert "\n" not in msg
    assert str(places["beside"]) in msg and str(places["cache"]) in msg and "SCIOPS_API_SPECS" in msg
    assert "Name or service not known" in msg
    for name in spec.FILES:
        assert name in msg
    assert not places["cache"].exists() or list(places["cache"].iterdir()) == []


def test_derivation_reproduces_the_shared_list_routes_file():
    specs = spec.locate()
    published = json.loads((specs / spec.GODADDY_FILE).read_text())
    assert spec.derive_list_routes(published) == json.loads((specs / spec.GODADDY_LIST_ROUTES_FILE).read_text())


def test_cli_prints_the_directory(places):
    complete(places["env"])
    out = subprocess.run([sys.executable, "-m", "tests.servers.spec", "--locate"], cwd=ROOT, capture_output=True, text=True,
                         env=dict(places["environ"], SCIOPS_API_SPECS=str(places["env"])), check=True, timeout=60)
    assert out.stdout == "%s\n" % places["env"]
    bad = subprocess.run([sys.executable, "-m", "tests.servers.spec", "--locate"], cwd=ROOT, capture_output=True, text=True,
                         env=dict(places["environ"], SCIOPS_API_SPECS=str(places["env"] / "nope")), check=False, timeout=60)
    assert bad.returncode != 0 and bad.stdout == "" and "SCIOPS_API_SPECS" in bad.stderr


def test_the_shared_specs_load():
    assert "/v2/droplets" in spec.digitalocean().doc["paths"]
    assert "/v1/domains/{domain}/records" in spec.godaddy().doc["paths"]
