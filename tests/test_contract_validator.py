"""tests/contract.py: requests are checked against GitHub's official REST description, not our reading of it."""

from __future__ import annotations

from typing import Any

import pytest

from simulators.http import RecordedRequest
from tests.contract import (
    GITHUB_SPEC_PATH,
    _compile,
    load_github_spec,
    match_operation,
    translate_openapi30,
    validate_request,
    validate_response,
)

pytestmark = pytest.mark.skipif(
    not GITHUB_SPEC_PATH.exists(), reason="node_modules/@octokit/openapi is absent: run npm ci"
)

SHA = "6dcb09b5b57875f334f61aebed695e2e4193db5e"


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    return load_github_spec()


def req(method: str, path: str, query: dict[str, list[str]] | None = None, body: Any = None) -> RecordedRequest:
    return RecordedRequest(method=method, path=path, query=query or {}, headers={}, body=body, status=200)


GOOD = [
    req("POST", "/app/installations/1/access_tokens", body={"permissions": {}}),
    req("GET", "/app"),
    req("GET", "/repos/acme/payments/installation"),
    req("GET", "/repos/acme/payments"),
    req("GET", "/repos/acme/payments/pulls", {"state": ["all"], "per_page": ["100"], "page": ["2"]}),
    req("GET", "/repos/acme/payments/pulls/7"),
    req("GET", "/repos/acme/payments/pulls/7/commits", {"per_page": ["100"]}),
    req("GET", "/repos/acme/payments/pulls/7/reviews"),
    req("GET", "/repos/acme/payments/commits", {"sha": ["feature/x"], "per_page": ["50"]}),
    req("GET", f"/repos/acme/payments/commits/{SHA}"),
    req("GET", f"/repos/acme/payments/commits/{SHA}/pulls"),
    req("GET", "/repos/acme/payments/commits/feature/x/check-runs", {"check_name": ["Countersign"]}),
    req("GET", "/repos/acme/payments/commits/main/status"),
    req("GET", "/repos/acme/payments/commits/main/statuses"),
    req("GET", "/repos/acme/payments/compare/main...feature/x", {"page": ["3"], "per_page": ["100"]}),
    req("GET", "/repos/acme/payments/contents/.github/countersign.yml", {"ref": ["main"]}),
    req("POST", "/repos/acme/payments/check-runs", body={"name": "Countersign", "head_sha": SHA}),
    req(
        "POST",
        "/repos/acme/payments/check-runs",
        body={"name": "C", "head_sha": SHA, "conclusion": "failure", "output": {"title": "t", "summary": "s"}},
    ),
    req("PATCH", "/repos/acme/payments/check-runs/4", body={"status": "completed", "conclusion": "success"}),
    req("POST", f"/repos/acme/payments/statuses/{SHA}", body={"state": "success", "context": "countersign"}),
    # `target_url` and `description` are `nullable: true` (OpenAPI 3.0): null must pass.
    req("POST", f"/repos/acme/payments/statuses/{SHA}", body={"state": "pending", "target_url": None}),
]


@pytest.mark.parametrize("good", GOOD, ids=lambda r: f"{r.method} {r.path}")
def test_requests_github_documents_pass(spec: dict[str, Any], good: RecordedRequest) -> None:
    assert validate_request(spec, good) == []


def test_a_path_github_does_not_have_is_named(spec: dict[str, Any]) -> None:
    problems = validate_request(spec, req("GET", "/repos/acme/payments/pull/7"))
    assert problems == ["GET /repos/acme/payments/pull/7: no path in GitHub's description matches"]


def test_a_method_the_path_does_not_take_is_named(spec: dict[str, Any]) -> None:
    problems = validate_request(spec, req("DELETE", "/repos/acme/payments/pulls/7"))
    assert len(problems) == 1
    assert "method not described for /repos/{owner}/{repo}/pulls/{pull_number} (GET, PATCH)" in problems[0]


def test_a_check_run_conclusion_github_does_not_know_is_refused(spec: dict[str, Any]) -> None:
    body = {"name": "Countersign", "head_sha": SHA, "conclusion": "passed"}
    problems = validate_request(spec, req("POST", "/repos/acme/payments/check-runs", body=body))
    assert len(problems) == 1
    assert "body.conclusion: 'passed' is not one of" in problems[0]


def test_required_body_fields_and_length_limits_are_enforced(spec: dict[str, Any]) -> None:
    missing = validate_request(spec, req("POST", "/repos/acme/payments/check-runs", body={"name": "C"}))
    too_long = validate_request(
        spec,
        req(
            "POST",
            "/repos/acme/payments/check-runs",
            body={"name": "C", "head_sha": SHA, "output": {"title": "t", "summary": "x" * 65_536}},
        ),
    )
    no_body = validate_request(spec, req("POST", "/repos/acme/payments/check-runs"))
    assert any("'head_sha' is a required property" in p for p in missing)
    assert any("body.output.summary" in p and "is too long" in p for p in too_long)
    assert no_body == ["POST /repos/acme/payments/check-runs: the request body is required"]


def test_a_null_where_the_schema_is_not_nullable_is_refused(spec: dict[str, Any]) -> None:
    problems = validate_request(spec, req("POST", f"/repos/acme/payments/statuses/{SHA}", body={"state": None}))
    assert any("body.state: None is not one of" in p for p in problems)


def test_per_page_above_githubs_maximum_of_100_is_refused(spec: dict[str, Any]) -> None:
    problems = validate_request(spec, req("GET", "/repos/acme/payments/pulls/7/commits", {"per_page": ["500"]}))
    assert problems == [
        "GET /repos/acme/payments/pulls/7/commits: query parameter per_page='500': "
        "500 is greater than the maximum of 100"
    ]


def test_query_parameters_are_typed_enumerated_and_described(spec: dict[str, Any]) -> None:
    not_an_integer = validate_request(spec, req("GET", "/repos/acme/payments/pulls", {"page": ["two"]}))
    not_in_enum = validate_request(spec, req("GET", "/repos/acme/payments/pulls", {"state": ["merged"]}))
    unknown = validate_request(spec, req("GET", "/repos/acme/payments/pulls/7", {"expand": ["all"]}))
    assert not_an_integer == ["GET /repos/acme/payments/pulls: query parameter page='two' is not of type integer"]
    assert len(not_in_enum) == 1
    assert "'merged' is not one of ['open', 'closed', 'all']" in not_in_enum[0]
    assert unknown == ["GET /repos/acme/payments/pulls/7: query parameter 'expand' is not described (described: none)"]


def test_a_missing_required_query_parameter_is_named(spec: dict[str, Any]) -> None:
    # None of the paths the app calls has a required query parameter: take the first operation that does.
    template, operation = next(
        (path, op)
        for path, item in sorted(spec["paths"].items())
        for method, op in item.items()
        if method == "get"
        and "{" not in path
        and any(p.get("in") == "query" and p.get("required") for p in op.get("parameters", []) if "$ref" not in p)
    )
    name = next(p["name"] for p in operation["parameters"] if "$ref" not in p and p.get("required"))
    problems = validate_request(spec, req("GET", template))
    assert f"GET {template}: required query parameter {name!r} is missing" in problems


def test_literal_segments_beat_templates(spec: dict[str, Any]) -> None:
    assert match_operation(spec, "GET", "/repos/a/b/commits/feature/x/status")[0] == (
        "/repos/{owner}/{repo}/commits/{ref}/status"
    )
    assert match_operation(spec, "GET", "/repos/a/b/commits/feature/x")[0] == "/repos/{owner}/{repo}/commits/{ref}"
    assert match_operation(spec, "GET", "/repos/a/b/pulls/comments")[0] == "/repos/{owner}/{repo}/pulls/comments"
    assert (
        match_operation(spec, "GET", "/repos/a/b/compare/main...x/y")[0] == "/repos/{owner}/{repo}/compare/{basehead}"
    )


def test_nullable_translation() -> None:
    schema = {"type": "string", "nullable": True, "enum": ["a"], "properties": {"nullable": {"type": "string"}}}
    assert translate_openapi30(schema) == {
        "type": ["string", "null"],
        "enum": ["a", None],
        "properties": {"nullable": {"type": "string"}},
    }
    assert translate_openapi30({"allOf": [{"$ref": "#/x"}], "nullable": True}) == {
        "anyOf": [{"allOf": [{"$ref": "#/x"}]}, {"type": "null"}]
    }


def test_responses_are_checked_against_the_documented_schema(spec: dict[str, Any]) -> None:
    good = {"total_count": 0, "check_runs": []}
    bad = {"total_count": "none", "check_runs": []}
    path = "/repos/a/b/commits/main/check-runs"
    assert validate_response(spec, "GET", path, 200, good) == []
    assert any("'none' is not of type 'integer'" in p for p in validate_response(spec, "GET", path, 200, bad))


def test_two_thousand_requests_reuse_one_compiled_description_and_its_validators(spec: dict[str, Any]) -> None:
    # What keeps a whole suite's contract checks fast; bench/simulators.py prints how fast they are.
    assert [validate_request(spec, good) for good in GOOD] == [[] for _ in GOOD]
    compiled = _compile(spec)
    validators = dict(compiled.validators)
    assert validators  # the request bodies and typed query parameters above were compiled once

    for i in range(2000):
        assert validate_request(spec, GOOD[i % len(GOOD)]) == []

    assert _compile(spec) is compiled
    assert compiled.validators.keys() == validators.keys()
    assert all(compiled.validators[key] is validator for key, validator in validators.items())
