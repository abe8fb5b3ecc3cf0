"""Validate requests and responses of the local test servers against the providers' published specs.

The specifications are found by ``locate()`` (SCIOPS_API_SPECS, else ../shared/api-specs beside the
checkout, else a cache that is filled from the providers' published locations when this machine
can reach them) and loaded once.
A request the real API would refuse by its contract (unknown route or method, a path parameter
outside its enum, a query parameter of the wrong type or range, a body that does not match the
schema) is reported, and the servers answer it like the provider (400/404/422) and record it as
a contract violation, which the tests assert is empty. Responses are checked the same way: a
status the operation does not document (and no ``default`` response) or a body outside the
documented schema is a violation.

    python -m tests.servers.spec --locate    # print the directory (fetching into the cache if needed)
"""
from __future__ import annotations

import copy
import json
import os
import re
import sys
from functools import lru_cache
from pathlib import Path
from urllib.parse import unquote

import yaml
from jsonschema import Draft4Validator
from openapi_schema_validator import OAS30Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

DIGITALOCEAN_FILE = "digitalocean-v2.bundled.yaml"
GODADDY_FILE = "godaddy-domains-v1.swagger.json"
GODADDY_LIST_ROUTES_FILE = "godaddy-domains-v1.with-list-routes.swagger.json"
FILES = (DIGITALOCEAN_FILE, GODADDY_FILE, GODADDY_LIST_ROUTES_FILE)
# The providers' published locations (the list-routes variant is derived from GoDaddy's file).
SOURCES = {
    DIGITALOCEAN_FILE: "https://api-engineering.nyc3.cdn.digitaloceanspaces.com/spec-ci/DigitalOcean-public.v2.yaml",
    GODADDY_FILE: "https://developer.godaddy.com/swagger/swagger_domains.json",
}
ENV = "SCIOPS_API_SPECS"
# The GET routes the live API serves but GoDaddy's file omits, modelled on GET .../records/{type}/{name}.
LIST_ROUTES = {
    "/v1/domains/{domain}/records": "recordGetAll",
    "/v1/domains/{domain}/records/{type}": "recordGetByType",
}
LIST_ROUTES_MODEL = "/v1/domains/{domain}/records/{type}/{name}"


class SpecsNotFound(RuntimeError):
    """The specifications are nowhere to be found and cannot be fetched; ``str()`` says where to put them."""


def beside_checkout() -> Path:
    """../shared/api-specs beside the checkout (this file is tests/servers/spec.py in it)."""
    return Path(__file__).resolve().parents[3] / "shared" / "api-specs"


def cache_dir(environ=None) -> Path:
    environ = os.environ if environ is None else environ
    base = environ.get("XDG_CACHE_HOME") or str(Path(environ.get("HOME") or Path.home()) / ".cache")
    return Path(base) / "sciops" / "api-specs"


def _complete(path: Path) -> bool:
    return all((path / name).is_file() for name in FILES)


def fetch_url(url: str, timeout: float = 60) -> bytes:
    """GET a published specification (proxies from the environment). Raises OSError without a network."""
    from urllib.request import urlopen
    with urlopen(url, timeout=timeout) as resp:  # noqa: S310 - fixed https URLs above
        return resp.read()


def derive_list_routes(published: dict) -> dict:
    """GoDaddy's file plus the two list routes (GET .../records and GET .../records/{type}), each a copy of
    GET .../records/{type}/{name} (recordGet) with only the path parameters of its own route and the
    header, no query parameters, its own operationId and an ``x-contract-overlay`` note."""
    doc = copy.deepcopy(published)
    model = published["paths"][LIST_ROUTES_MODEL]["get"]
    for template, operation_id in LIST_ROUTES.items():
        names = set(re.findall(r"\{(\w+)\}", template))
        op = copy.deepcopy(model)
        op["parameters"] = [p for p in op.get("parameters", [])
                            if p.get("in") == "header" or (p.get("in") == "path" and p.get("name") in names)]
        op["operationId"] = operation_id
        op["x-contract-overlay"] = "synthesised from %s; not in GoDaddy's published swagger" % model.get("operationId")
        doc["paths"].setdefault(template, {})["get"] = op
    return doc


def _fetch_into(target: Path, fetch) -> None:
    data = {DIGITALOCEAN_FILE: fetch(SOURCES[DIGITALOCEAN_FILE]), GODADDY_FILE: fetch(SOURCES[GODADDY_FILE])}
    try:
        published = json.loads(data[GODADDY_FILE].decode("utf-8"))
    except ValueError as exc:
        raise OSError("%s did not answer a JSON specification (%s)" % (SOURCES[GODADDY_FILE], exc)) from exc
    if "paths" not in published or b"openapi:" not in data[DIGITALOCEAN_FILE][:4096]:
        raise OSError("the providers' locations did not answer their specifications")
    data[GODADDY_LIST_ROUTES_FILE] = json.dumps(derive_list_routes(published), indent=4).encode("utf-8")
    target.mkdir(parents=True, exist_ok=True)
    for name in FILES:
        tmp = target / (".%s.%d.tmp" % (name, os.getpid()))
        tmp.write_bytes(data[name])
        tmp.replace(target / name)


def locate(environ=None, fetch=None, beside=None) -> Path:
    """The directory holding the three specification files (FILES), in this order: the directory named by
    SCIOPS_API_SPECS (when set, it must hold them); ../shared/api-specs beside the checkout; the cache
    ($XDG_CACHE_HOME or ~/.cache, then sciops/api-specs); else they are fetched from the providers'
    published locations (SOURCES) into the cache. Raises SpecsNotFound with one message otherwise."""
    environ = os.environ if environ is None else environ
    fetch = fetch_url if fetch is None else fetch
    beside = beside_checkout() if beside is None else Path(beside)
    cache = cache_dir(environ)
    files = ", ".join(FILES)
    if environ.get(ENV):
        chosen = Path(environ[ENV])
        if _complete(chosen):
            return chosen
        raise SpecsNotFound("API specifications not found: %s=%s does not hold %s; put them there, or unset %s to use "
                            "%s (beside the checkout) or the cache %s" % (ENV, chosen, files, ENV, beside, cache))
    for place in (beside, cache):
        if _complete(place):
            return place
    try:
        _fetch_into(cache, fetch)
    except OSError as exc:
        raise SpecsNotFound("API specifications not found and not fetched (%s): put %s in %s (beside the checkout), "
                            "or in a directory named by %s, or let this machine reach %s and %s so that they are "
                            "fetched into %s" % (exc, files, beside, ENV, SOURCES[DIGITALOCEAN_FILE],
                                                 SOURCES[GODADDY_FILE], cache)) from exc
    return cache


@lru_cache(maxsize=None)
def specs_dir() -> Path:
    return locate()


def _pointer(*parts) -> str:
    return "/".join(str(p).replace("~", "~0").replace("/", "~1") for p in parts)


class Spec:
    def __init__(self, doc: dict, openapi3: bool):
        self.doc = doc
        self.openapi3 = openapi3
        self.uri = "urn:sciops:spec"
        self.registry = Registry().with_resource(self.uri, Resource(contents=doc, specification=DRAFT4))
        self.routes = []
        for template, item in doc["paths"].items():
            regex = "^" + re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(template)) + "$"
            self.routes.append((re.compile(regex), template, item))

    # --- schema helpers ------------------------------------------------------------------
    def _validator(self, *pointer):
        ref = {"$ref": self.uri + "#/" + _pointer(*pointer)}
        cls = OAS30Validator if self.openapi3 else Draft4Validator
        return cls(ref, registry=self.registry)

    def _errors(self, value, *pointer) -> list[str]:
        return [f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
                for e in self._validator(*pointer).iter_errors(value)]

    def _resolve(self, obj):
        while isinstance(obj, dict) and "$ref" in obj:
            node = self.doc
            for part in obj["$ref"].lstrip("#/").split("/"):
                node = node[part.replace("~1", "/").replace("~0", "~")]
            obj = node
        return obj

    # --- routing -------------------------------------------------------------------------
    def match(self, method: str, path: str):
        """(template, operation, path params) or raises LookupError(status, message)."""
        method = method.lower()
        allowed = False
        for regex, template, item in self.routes:
            m = regex.match(path)
            if m:
                if method in item:  # parameters decoded: GET .../records/A/%2A is the record named "*"
                    return template, item[method], {k: unquote(v) for k, v in m.groupdict().items()}
                allowed = True
        raise LookupError(405 if allowed else 404, f"{method.upper()} {path} is not in the specification")

    def _parameters(self, template, op):
        item = self.doc["paths"][template]
        params = [self._resolve(p) for p in item.get("parameters", [])] + [self._resolve(p) for p in op.get("parameters", [])]
        return params

    def validate_request(self, method, path, query: dict, body) -> tuple[str, dict, list[str]]:
        template, op, path_params = self.match(method, path)
        errors = []
        for param in self._parameters(template, op):
            where, name = param["in"], param["name"]
            if self.openapi3:
                schema = param.get("schema", param)
            else:
                schema = {k: v for k, v in param.items() if k in ("type", "enum", "minimum", "maximum", "format")}
            if where == "path":
                value = path_params.get(name)
            elif where == "query":
                value = query.get(name)
            else:
                continue
            if value is None:
                if param.get("required"):
                    errors.append(f"{where} parameter {name} is required")
                continue
            if schema.get("type") == "integer":
                if not re.fullmatch(r"-?\d+", value):
                    errors.append(f"{where} parameter {name}={value!r} is not an integer")
                    continue
                value = int(value)
            enum = list(schema.get("enum") or [])
            if enum and value not in enum:
                errors.append(f"{where} parameter {name}={value!r} is not one of {enum}")
            if "minimum" in schema and isinstance(value, int) and value < schema["minimum"]:
                errors.append(f"{where} parameter {name}={value} is below {schema['minimum']}")
            if "maximum" in schema and isinstance(value, int) and value > schema["maximum"]:
                errors.append(f"{where} parameter {name}={value} is above {schema['maximum']}")
        if self.openapi3:
            rb = self._resolve(op.get("requestBody")) if op.get("requestBody") else None
            if rb:
                if body is None and rb.get("required", False):
                    errors.append("request body is required")
                elif body is not None:
                    pointer = ("paths", template, method.lower(), "requestBody", "content", "application/json", "schema")
                    errors += [f"body {e}" for e in self._errors(body, *pointer)]
        else:
            for i, param in enumerate(op.get("parameters", [])):
                if param.get("in") == "body":
                    if body is None:
                        if param.get("required"):
                            errors.append("request body is required")
                    else:
                        errors += [f"body {e}" for e in self._errors(body, "paths", template, method.lower(), "parameters", i, "schema")]
        return template, path_params, errors

    def validate_response(self, method, template, status, body) -> list[str]:
        """Errors of a reply against the operation's response for ``status`` (or its ``default``).
        ``body``: the parsed JSON, None for no body, or an object with ``content_type`` (not JSON)."""
        op = self.doc["paths"][template][method.lower()]
        responses = op["responses"]
        key = str(status) if str(status) in responses else ("default" if "default" in responses else None)
        if key is None:
            return [f"status {status} is not documented for {method} {template}"]
        resp = self._resolve(responses[key])
        not_json = getattr(body, "content_type", None)
        if self.openapi3:
            content = resp.get("content") or {}
            if "application/json" not in content or "schema" not in content["application/json"]:
                return []
            if not_json:
                return [f"status {status} of {method} {template}: the body is {not_json}, not JSON as documented"]
            if body is None:
                return [f"status {status} of {method} {template} needs a body"]
            # responses may be $ref'd: validate against the resolved location
            ref = responses[key].get("$ref")
            pointer = ref.lstrip("#/").split("/") if ref else ["paths", template, method.lower(), "responses", key]
            return self._errors(body, *pointer, "content", "application/json", "schema")
        if "schema" not in resp or body is None:
            return []
        if not_json:
            return [f"status {status} of {method} {template}: the body is {not_json}, not JSON as documented"]
        return self._errors(body, "paths", template, method.lower(), "responses", key, "schema")


@lru_cache(maxsize=None)
def godaddy() -> Spec:
    """GoDaddy's file as published plus the two list routes (GODADDY_LIST_ROUTES_FILE); nothing else is added."""
    return Spec(json.loads((specs_dir() / GODADDY_LIST_ROUTES_FILE).read_text()), openapi3=False)


@lru_cache(maxsize=None)
def digitalocean() -> Spec:
    cache = Path(os.environ.get("TMPDIR", "/tmp")) / "sciops-digitalocean-v2.json"  # parsed once, as JSON
    src = specs_dir() / DIGITALOCEAN_FILE
    if cache.exists() and cache.stat().st_mtime >= src.stat().st_mtime and cache.stat().st_size:
        doc = json.loads(cache.read_text())
    else:
        doc = yaml.load(src.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        tmp = cache.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(doc, default=str))
        tmp.replace(cache)
    return Spec(doc, openapi3=True)


def main(argv=None) -> int:
    import argparse
    parser = argparse.ArgumentParser(prog="python -m tests.servers.spec", description=locate.__doc__)
    parser.add_argument("--locate", action="store_true", required=True,
                        help="print the directory of the API specifications (fetched into the cache when missing)")
    parser.parse_args(argv)
    try:
        print(locate())
    except SpecsNotFound as exc:
        print(exc, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
