"""Validate requests and responses of the local test servers against the providers' published specs.

The specifications in ../shared/api-specs beside the checkout (override with SCIOPS_API_SPECS) are loaded once.
A request the real API would refuse by its contract (unknown route or method, a path parameter
outside its enum, a query parameter of the wrong type or range, a body that does not match the
schema) is reported, and the servers answer it like the provider (400/404/422) and record it as
a contract violation, which the tests assert is empty. Responses are checked the same way.
"""
from __future__ import annotations

import json
import os
import re
from functools import lru_cache
from pathlib import Path
from urllib.parse import unquote

import yaml
from jsonschema import Draft4Validator
from openapi_schema_validator import OAS30Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

# ../shared/api-specs beside the checkout unless SCIOPS_API_SPECS says otherwise.
SPECS = Path(os.environ.get("SCIOPS_API_SPECS", str(Path(__file__).resolve().parents[3] / "shared" / "api-specs")))


def _pointer(*parts) -> str:
    return "/".join(str(p).replace("~", "~0").replace("/", "~1") for p in parts)


class Spec:
    def __init__(self, doc: dict, openapi3: bool, extensions=None):
        self.doc = doc
        self.openapi3 = openapi3
        self.uri = "urn:sciops:spec"
        self.registry = Registry().with_resource(self.uri, Resource(contents=doc, specification=DRAFT4))
        self.routes = []
        for template, item in doc["paths"].items():
            regex = "^" + re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(template)) + "$"
            self.routes.append((re.compile(regex), template, item))
        self.extensions = extensions or {}

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
            enum += self.extensions.get(("enum", template, name), [])
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
        op = self.doc["paths"][template][method.lower()]
        responses = op["responses"]
        key = str(status) if str(status) in responses else ("default" if "default" in responses else None)
        if key is None:
            return [f"status {status} is not documented for {method} {template}"]
        resp = self._resolve(responses[key])
        if self.openapi3:
            content = resp.get("content") or {}
            if "application/json" not in content or "schema" not in content["application/json"]:
                return [] if body is None else []
            if body is None:
                return [f"status {status} of {method} {template} needs a body"]
            # responses may be $ref'd: validate against the resolved location
            ref = responses[key].get("$ref")
            pointer = ref.lstrip("#/").split("/") if ref else ["paths", template, method.lower(), "responses", key]
            return self._errors(body, *pointer, "content", "application/json", "schema")
        if "schema" not in resp or body is None:
            return []
        return self._errors(body, "paths", template, method.lower(), "responses", key, "schema")


@lru_cache(maxsize=None)
def godaddy() -> Spec:
    doc = json.loads((SPECS / "godaddy-domains-v1.with-list-routes.swagger.json").read_text())
    # Documented deviation: the live API serves CAA records (GoDaddy's DNS manager and API support
    # them) although the published file's type enums stop at TXT. The server accepts CAA in the
    # record-set routes; nothing else is added.
    ext = {}
    for template in ("/v1/domains/{domain}/records/{type}/{name}", "/v1/domains/{domain}/records/{type}"):
        ext[("enum", template, "type")] = ["CAA"]
    for name in ("DNSRecord",):
        enum = doc["definitions"][name]["properties"]["type"]["enum"]
        if "CAA" not in enum:
            enum.append("CAA")
    return Spec(doc, openapi3=False, extensions=ext)


@lru_cache(maxsize=None)
def digitalocean() -> Spec:
    cache = Path(os.environ.get("TMPDIR", "/tmp")) / "sciops-digitalocean-v2.json"
    src = SPECS / "digitalocean-v2.bundled.yaml"
    if cache.exists() and cache.stat().st_mtime >= src.stat().st_mtime:
        doc = json.loads(cache.read_text())
    else:
        doc = yaml.load(src.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        tmp = cache.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(doc, default=str))
        tmp.replace(cache)
    return Spec(doc, openapi3=True)
