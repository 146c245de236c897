"""Checks requests the GitHub simulator received against GitHub's official OpenAPI description."""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from jsonschema import Draft4Validator, Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4, DRAFT202012

from simulators.http import RecordedRequest

PROJECT_ROOT = Path(__file__).resolve().parent.parent
GITHUB_SPEC_PATH = PROJECT_ROOT / "node_modules" / "@octokit" / "openapi" / "generated" / "api.github.com.json"
SPEC_URI = "urn:github-rest"
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
# GitHub states page-size limits in prose ("The number of results per page (max 100)") rather than `maximum`.
PROSE_MAXIMUM = re.compile(r"\(max (\d+)\)")


def load_github_spec(path: Path = GITHUB_SPEC_PATH) -> dict[str, Any]:
    """The REST description from npm `@octokit/openapi` (see package.json), parsed once per process."""
    return _load(str(path))


@functools.cache
def _load(path: str) -> dict[str, Any]:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)  # type: ignore[no-any-return]


def translate_openapi30(node: Any) -> Any:
    """OpenAPI 3.0 schema objects → JSON Schema draft 4: `nullable: true` becomes a type that admits null."""
    if isinstance(node, list):
        return [translate_openapi30(item) for item in node]
    if not isinstance(node, dict):
        return node
    result = {key: translate_openapi30(value) for key, value in node.items()}
    if result.get("nullable") is True:
        del result["nullable"]
        if "enum" in result and None not in result["enum"]:
            result["enum"] = [*result["enum"], None]
        kind = result.get("type")
        if isinstance(kind, str):
            result["type"] = [kind, "null"]
        elif kind is None:
            result = {"anyOf": [result, {"type": "null"}]}
    return result


@dataclass
class _Route:
    template: str
    pattern: re.Pattern[str]
    literal_segments: int
    multi_segments: int
    item: dict[str, Any]


@dataclass
class _CompiledSpec:
    spec: dict[str, Any]
    routes: list[_Route]
    registry: Registry  # type: ignore[type-arg]
    validators: dict[str, Draft4Validator] = field(default_factory=dict)


def _pointer(*parts: str) -> str:
    return "#/" + "/".join(part.replace("~", "~0").replace("/", "~1") for part in parts)


def _ref_parts(ref: str) -> list[str]:
    return [part.replace("~1", "/").replace("~0", "~") for part in ref.removeprefix("#/").split("/")]


def _resolve(spec: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        target: Any = spec
        for part in _ref_parts(node["$ref"]):
            target = target[part]
        node = target
    return node


def _parameters(spec: dict[str, Any], item: dict[str, Any], operation: dict[str, Any]) -> list[dict[str, Any]]:
    merged: dict[tuple[str, str], dict[str, Any]] = {}
    for raw in [*item.get("parameters", []), *operation.get("parameters", [])]:
        param = _resolve(spec, raw)
        merged[(param["in"], param["name"])] = param
    return list(merged.values())


_COMPILED: dict[int, _CompiledSpec] = {}


def _compile(spec: dict[str, Any]) -> _CompiledSpec:
    cached = _COMPILED.get(id(spec))
    if cached is not None and cached.spec is spec:
        return cached
    routes = []
    for template, item in spec["paths"].items():
        multi = set()
        for operation in (item.get(m) for m in HTTP_METHODS):
            if operation:
                multi |= {p["name"] for p in _parameters(spec, item, operation) if p.get("x-multi-segment")}
        regex = ""
        literal = multi_count = 0
        for segment in template.strip("/").split("/"):
            literal += "{" not in segment
            pieces = re.split(r"(\{[^}]+\})", segment)
            part = ""
            for piece in pieces:
                if piece.startswith("{"):
                    name = piece[1:-1]
                    multi_count += name in multi
                    part += ".+" if name in multi else "[^/]+"
                else:
                    part += re.escape(piece)
            regex += "/" + part
        routes.append(_Route(template, re.compile(regex + r"/?\Z"), literal, multi_count, item))
    # Literal segments beat templates: /repos/{owner}/{repo}/commits/{ref}/status is not .../{ref} with a slash.
    routes.sort(key=lambda r: (-r.literal_segments, r.multi_segments, r.template))
    registry = Registry().with_resource(SPEC_URI, Resource(contents=translate_openapi30(spec), specification=DRAFT4))
    compiled = _CompiledSpec(spec, routes, registry)
    _COMPILED[id(spec)] = compiled
    return compiled


def _validator(compiled: _CompiledSpec, pointer: str) -> Draft4Validator:
    validator = compiled.validators.get(pointer)
    if validator is None:
        validator = Draft4Validator({"$ref": SPEC_URI + pointer}, registry=compiled.registry)
        compiled.validators[pointer] = validator
    return validator


def _errors(validator: Any, value: Any, where: str) -> list[str]:
    found = sorted(validator.iter_errors(value), key=lambda e: list(e.absolute_path))
    problems = []
    for error in found[:5]:
        location = ".".join(str(p) for p in error.absolute_path)
        message = error.message
        if len(message) > 300:
            # jsonschema quotes the offending value; a 65,536-character summary makes an unreadable report.
            message = message[:140] + " … " + message[-140:]
        problems.append(f"{where}{'.' + location if location else ''}: {message}")
    return problems


def _coerce(raw: str, schema: dict[str, Any]) -> Any:
    kind = schema.get("type")
    if kind == "integer":
        return int(raw)
    if kind == "number":
        return float(raw)
    if kind == "boolean":
        if raw not in ("true", "false"):
            raise ValueError(raw)
        return raw == "true"
    return raw


def match_operation(spec: dict[str, Any], method: str, path: str) -> tuple[str | None, dict[str, Any] | None, str]:
    """(path template, operation, problem) for a request line; problem is empty when both were found."""
    compiled = _compile(spec)
    for route in compiled.routes:
        if route.pattern.match(path):
            operation = route.item.get(method.lower())
            if operation is None:
                allowed = ", ".join(m.upper() for m in HTTP_METHODS if m in route.item)
                return route.template, None, f"{method} {path}: method not described for {route.template} ({allowed})"
            return route.template, operation, ""
    return None, None, f"{method} {path}: no path in GitHub's description matches"


# GitHub's OAuth web flow is not part of the REST description: these are its parameters as GitHub's documentation
# gives them ("Authorizing GitHub Apps": generating a user access token), the PKCE ones included.
WEB_FLOW: dict[tuple[str, str], tuple[frozenset[str], frozenset[str]]] = {
    ("GET", "/login/oauth/authorize"): (
        frozenset({"client_id"}),
        frozenset({"client_id", "redirect_uri", "login", "scope", "state", "allow_signup", "prompt",
                   "code_challenge", "code_challenge_method"}),
    ),
    ("POST", "/login/oauth/access_token"): (
        frozenset({"client_id", "client_secret"}),
        frozenset({"client_id", "client_secret", "code", "redirect_uri", "code_verifier", "repository_id",
                   "grant_type", "refresh_token"}),
    ),
}  # fmt: skip


def validate_web_flow(req: RecordedRequest) -> list[str]:
    """Problems with a request of GitHub's OAuth web flow (`/login/oauth/...`), against WEB_FLOW."""
    where = f"{req.method} {req.path}"
    described = WEB_FLOW.get((req.method, req.path.rstrip("/")))
    if described is None:
        return [f"{where}: not a step of GitHub's OAuth web flow"]
    required, allowed = described
    params = {name: values[-1] for name, values in req.query.items()}
    if isinstance(req.body, str) and req.body:
        params.update({name: values[-1] for name, values in parse_qs(req.body).items()})
    elif isinstance(req.body, dict):
        params.update({str(k): str(v) for k, v in req.body.items()})
    problems = [f"{where}: parameter {name!r} is not described" for name in sorted(set(params) - allowed)]
    problems += [f"{where}: required parameter {name!r} is missing" for name in sorted(required - set(params))]
    if "code_challenge" in params and params.get("code_challenge_method") != "S256":
        problems.append(f"{where}: GitHub takes code_challenge_method=S256 only")
    if params.get("grant_type", "authorization_code") not in ("authorization_code", "refresh_token"):
        problems.append(f"{where}: grant_type {params['grant_type']!r} is not authorization_code or refresh_token")
    if req.method == "POST" and params.get("grant_type") != "refresh_token" and "code" not in params:
        problems.append(f"{where}: required parameter 'code' is missing")
    return problems


def validate_request(spec: dict[str, Any], req: RecordedRequest) -> list[str]:
    """Human-readable problems with one recorded request; empty when GitHub's description allows it."""
    if req.path.startswith("/login/oauth/"):
        return validate_web_flow(req)
    template, operation, problem = match_operation(spec, req.method, req.path)
    if operation is None or template is None:
        return [problem]
    compiled = _compile(spec)
    where = f"{req.method} {req.path}"
    problems: list[str] = []
    item = spec["paths"][template]
    params = _parameters(spec, item, operation)
    query_params = {p["name"]: p for p in params if p["in"] == "query"}
    for name, param in query_params.items():
        if param.get("required") and name not in req.query:
            problems.append(f"{where}: required query parameter {name!r} is missing")
    for name, values in req.query.items():
        param = query_params.get(name)
        if param is None:
            described = ", ".join(sorted(query_params)) or "none"
            problems.append(f"{where}: query parameter {name!r} is not described (described: {described})")
            continue
        schema = translate_openapi30(_resolve(spec, param.get("schema", {})))
        match = PROSE_MAXIMUM.search(param.get("description", ""))
        if match and "maximum" not in schema:
            schema = {**schema, "maximum": int(match.group(1))}
        for raw in values:
            if schema.get("type") == "array":
                value: Any = raw.split(",")
            else:
                try:
                    value = _coerce(raw, schema)
                except ValueError:
                    problems.append(f"{where}: query parameter {name}={raw!r} is not of type {schema.get('type')}")
                    continue
            cache_key = f"query:{template}:{req.method}:{name}"
            validator = compiled.validators.get(cache_key)
            if validator is None:
                validator = compiled.validators[cache_key] = Draft4Validator(schema, registry=compiled.registry)
            problems.extend(_errors(validator, value, f"{where}: query parameter {name}={raw!r}"))
    body_spec = operation.get("requestBody")
    if body_spec is not None:
        body_spec = _resolve(spec, body_spec)
        content = body_spec.get("content", {})
        media = next((m for m in content if m.startswith("application/json")), None)
        if req.body is None:
            if body_spec.get("required"):
                problems.append(f"{where}: the request body is required")
        elif media is not None and "schema" in content[media]:
            if "$ref" in operation["requestBody"]:
                pointer = _pointer(*_ref_parts(operation["requestBody"]["$ref"]), "content", media, "schema")
            else:
                pointer = _pointer("paths", template, req.method.lower(), "requestBody", "content", media, "schema")
            problems.extend(_errors(_validator(compiled, pointer), req.body, f"{where}: body"))
    elif req.body not in (None, "", {}) and req.method in ("GET", "DELETE"):
        problems.append(f"{where}: a body was sent but the operation takes none")
    return problems


def validate_response(spec: dict[str, Any], method: str, path: str, status: int, body: Any) -> list[str]:
    """Problems with an answer's JSON against the operation's documented response for that status."""
    template, operation, problem = match_operation(spec, method, path)
    if operation is None or template is None:
        return [problem]
    responses = operation.get("responses", {})
    key = str(status) if str(status) in responses else "default"
    if key not in responses:
        return [f"{method} {path}: status {status} is not documented ({', '.join(responses)})"]
    response = _resolve(spec, responses[key])
    content = response.get("content", {})
    media = next((m for m in content if "json" in m), None)
    if media is None or "schema" not in content[media]:
        return []
    if "$ref" in responses[key]:
        pointer = _pointer(*_ref_parts(responses[key]["$ref"]), "content", media, "schema")
    else:
        pointer = _pointer("paths", template, method.lower(), "responses", key, "content", media, "schema")
    return _errors(_validator(_compile(spec), pointer), body, f"{method} {path} → {status}")


def webhook_validator(webhooks_spec: dict[str, Any], name: str) -> Draft202012Validator:
    """A validator for one webhook (e.g. `pull-request-opened`) of the OpenAPI 3.1 webhooks description."""
    registry: Registry = Registry().with_resource(  # type: ignore[type-arg]
        "urn:github-webhooks", Resource(contents=webhooks_spec, specification=DRAFT202012)
    )
    pointer = _pointer("webhooks", name, "post", "requestBody", "content", "application/json", "schema")
    return Draft202012Validator({"$ref": "urn:github-webhooks" + pointer}, registry=registry)


def validate_webhook(webhooks_spec: dict[str, Any], name: str, payload: dict[str, Any]) -> list[str]:
    """Problems with a webhook payload against GitHub's webhook description `name`."""
    return _errors(webhook_validator(webhooks_spec, name), payload, name)
