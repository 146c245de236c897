"""The per-repository policy (.github/countersign.yml): schema, defaults and strict parsing."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import jsonschema
import yaml

from gating.policy.checks import RequiredCheckRule

CONFIG_PATH = ".github/countersign.yml"

DEFAULTS: dict[str, Any] = {
    "jira": {
        "projects": [],
        "key_sources": ["title", "branch", "commits"],
        "approved_statuses": ["Approved"],
        "approval_source": "changelog",
    },
    "identities": {},
    "pull_requests": {"require_review": False, "exempt_authors": ["dependabot[bot]", "renovate[bot]"]},
    "environments": {},
    "emergency": {"label": "emergency", "issue_types": ["Emergency Change"], "retroactive_deadline_hours": 72},
    "check_name": "Countersign",
}

_STRINGS = {"type": "array", "items": {"type": "string", "minLength": 1}, "uniqueItems": True}
_REQUIRED_CHECK = {
    "x-expected": "a check name, or {name: NAME, app: APP-SLUG} to pin the app that posts it",
    "anyOf": [
        {"type": "string", "minLength": 1},
        {
            "type": "object",
            "additionalProperties": False,
            "required": ["name"],
            "properties": {"name": {"type": "string", "minLength": 1}, "app": {"type": "string", "minLength": 1}},
        },
    ],
}

SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "jira": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "projects": {"type": "array", "items": {"type": "string", "pattern": "^[A-Z][A-Z0-9_]+$"}},
                "key_sources": {
                    "type": "array",
                    "items": {"enum": ["title", "branch", "commits", "body"]},
                    "uniqueItems": True,
                },
                "approved_statuses": {**_STRINGS, "minItems": 1},
                "approval_source": {"enum": ["changelog", "jsm"]},
            },
        },
        "identities": {
            "type": "object",
            "additionalProperties": {"type": "string", "minLength": 1},
        },
        "pull_requests": {
            "type": "object",
            "additionalProperties": False,
            "properties": {"require_review": {"type": "boolean"}, "exempt_authors": _STRINGS},
        },
        "environments": {
            "type": "object",
            "additionalProperties": {
                "type": ["object", "null"],
                "additionalProperties": False,
                "properties": {"required_checks": {"type": "array", "items": _REQUIRED_CHECK}},
            },
        },
        "emergency": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "label": {"type": "string", "minLength": 1},
                "issue_types": _STRINGS,
                "retroactive_deadline_hours": {"type": "integer", "minimum": 1},
            },
        },
        "check_name": {"type": "string", "minLength": 1, "maxLength": 100},
    },
}


class PolicyError(Exception):
    """The policy file cannot be used; the message says where and how to fix it."""

    def __init__(self, message: str, *, source: str = CONFIG_PATH, line: int | None = None) -> None:
        self.message = message
        self.source = source
        self.line = line
        where = f"{source}, line {line}" if line else source
        super().__init__(f"{where}: {message}")


@dataclass(frozen=True)
class EnvironmentPolicy:
    required_checks: tuple[RequiredCheckRule, ...] = ()


@dataclass(frozen=True)
class Policy:
    projects: tuple[str, ...] = ()
    key_sources: tuple[str, ...] = ("title", "branch", "commits")
    approved_statuses: tuple[str, ...] = ("Approved",)
    approval_source: str = "changelog"
    identities: dict[str, str] = field(default_factory=dict)
    require_review: bool = False
    exempt_authors: tuple[str, ...] = ("dependabot[bot]", "renovate[bot]")
    environments: dict[str, EnvironmentPolicy] = field(default_factory=dict)
    emergency_label: str = "emergency"
    emergency_issue_types: tuple[str, ...] = ("Emergency Change",)
    retroactive_deadline_hours: int = 72
    check_name: str = "Countersign"

    def environment(self, name: str) -> EnvironmentPolicy:
        """Environments not listed are gated with no required checks."""
        return self.environments.get(name, EnvironmentPolicy())

    def is_exempt(self, login: str | None) -> bool:
        return login is not None and login.lower() in {a.lower() for a in self.exempt_authors}


def load_document(text: str | None, *, source: str = CONFIG_PATH) -> dict[str, Any]:
    """Parse and validate one YAML document; an empty or missing file is an empty policy."""
    if text is None or not text.strip():
        return {}
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        raise PolicyError(f"not valid YAML: {problem}", source=source, line=mark.line + 1 if mark else None) from exc
    if node is None or data is None:  # no document (only comments), or one that is only `null`
        return {}
    if not isinstance(data, dict):
        raise PolicyError("the file must be a mapping of settings (e.g. `jira:`)", source=source, line=1)
    validator = jsonschema.Draft202012Validator(SCHEMA)
    errors = sorted(validator.iter_errors(data), key=lambda e: (len(e.absolute_path), list(map(str, e.path))))
    if errors:
        error = errors[0]
        raise PolicyError(_describe(error), source=source, line=_error_line(node, error))
    return data


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Repository settings over organisation defaults, section by section."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict) and key != "environments":
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def build_policy(*documents: dict[str, Any]) -> Policy:
    """Defaults, then each document in turn (organisation defaults, then the repository's file)."""
    data = DEFAULTS
    for document in documents:
        data = merge(data, document)
    jira, prs, emergency = data["jira"], data["pull_requests"], data["emergency"]
    return Policy(
        projects=tuple(jira["projects"]),
        key_sources=tuple(jira["key_sources"]),
        approved_statuses=tuple(jira["approved_statuses"]),
        approval_source=jira["approval_source"],
        identities={str(k): str(v) for k, v in data["identities"].items()},
        require_review=bool(prs["require_review"]),
        exempt_authors=tuple(prs["exempt_authors"]),
        environments={
            name: EnvironmentPolicy(
                required_checks=tuple(RequiredCheckRule.of(c) for c in (env or {}).get("required_checks", ()))
            )
            for name, env in data["environments"].items()
        },
        emergency_label=emergency["label"],
        emergency_issue_types=tuple(emergency["issue_types"]),
        retroactive_deadline_hours=int(emergency["retroactive_deadline_hours"]),
        check_name=data["check_name"],
    )


def parse_policy(repo_text: str | None, org_text: str | None = None, *, org_source: str = CONFIG_PATH) -> Policy:
    """The policy for a repository from its file and its organisation's defaults. Raises PolicyError."""
    org = load_document(org_text, source=org_source)
    repo = load_document(repo_text)
    return build_policy(org, repo)


def _describe(error: jsonschema.ValidationError) -> str:
    path = ".".join(str(p) for p in error.absolute_path) or "(top level)"
    schema: dict[str, Any] = error.schema if isinstance(error.schema, dict) else {}
    value: Any = error.validator_value
    if error.validator == "additionalProperties" and isinstance(schema.get("properties"), dict):
        allowed = ", ".join(sorted(schema["properties"]))
        instance: Any = error.instance
        extra = sorted(set(instance) - set(schema["properties"]))
        where = f"in `{path}`" if error.absolute_path else "at the top level"
        return f"unknown setting `{', '.join(extra)}` {where}; allowed: {allowed}"
    if error.validator == "enum":
        allowed = ", ".join(str(v) for v in value)
        return f"`{path}` is {error.instance!r}; allowed values: {allowed}"
    if error.validator == "type":
        expected = value if isinstance(value, str) else " or ".join(value)
        return f"`{path}` must be {_article(expected)}, not {type(error.instance).__name__} {error.instance!r}"
    if error.validator == "anyOf" and "x-expected" in schema:
        return f"`{path}` is {error.instance!r}; expected {schema['x-expected']}"
    if error.validator == "pattern":
        return f"`{path}` is {error.instance!r}; a Jira project key is upper-case letters, digits or _ (e.g. PAY)"
    return f"`{path}`: {error.message}"


def _article(type_name: str) -> str:
    words = {"array": "a list", "object": "a mapping", "boolean": "true or false", "integer": "a whole number"}
    return words.get(type_name, f"a {type_name}")


def _error_line(node: yaml.Node, error: jsonschema.ValidationError) -> int:
    """The line to fix: an unknown key's own line (the first, when there are several), else the value's."""
    path = list(error.absolute_path)
    instance: Any = error.instance
    if error.validator == "additionalProperties" and isinstance(instance, dict):
        known = error.schema.get("properties", {}) if isinstance(error.schema, dict) else {}
        lines = [_line_of(node, [*path, key]) for key in instance if key not in known]
        return min(lines, default=_line_of(node, path))
    return _line_of(node, path)


def _line_of(node: yaml.Node, path: list[Any]) -> int:
    """The 1-based line of the value at `path` in the composed YAML, or of its nearest parent."""
    line = node.start_mark.line + 1
    for part in path:
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                if key_node.value == str(part):
                    node = value_node
                    line = key_node.start_mark.line + 1
                    break
            else:
                return line
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line
