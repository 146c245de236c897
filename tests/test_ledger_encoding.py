"""The ledger's canonical form: RFC 8785 vectors, values JCS cannot hold, old entries, a deployment end to end."""

from __future__ import annotations

import json
import math
import struct
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import rfc8785
from click.testing import CliRunner
from conftest import LiveApp
from sqlalchemy import text
from test_deploy_gate_e2e import answers, deploy, ledger_entries, setup_release
from test_layout import impurities

from gating.cli import main
from gating.console.dossiers import load_dossier
from gating.console.scope import EVERYTHING
from gating.db import Database
from gating.ledger import GENESIS, Ledger, canonical_json, entry_hash
from gating.ledger.encoding import LedgerEncodingError, decode

BIG = 2**60
LONE = "\ud83d"  # the first half of 😀 (U+1F600) without its second half


def parsed(value: Any) -> Any:
    return json.loads(canonical_json(value))


def roundtrip(value: Any) -> Any:
    return decode(json.loads(canonical_json(value)))


# -- RFC 8785 --------------------------------------------------------------------------------------------------------


def test_rfc8785_section_3_2_2_example() -> None:
    source = (
        '{"numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],'
        ' "string": "\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/",'
        ' "literals": [null, true, false]}'
    )
    expected = (
        '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],'
        '"string":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}'
    )
    assert canonical_json(json.loads(source)) == expected


def test_rfc8785_section_3_2_3_sorts_keys_by_utf16_code_units() -> None:
    source = {
        "\u20ac": "Euro Sign",
        "\r": "Carriage Return",
        "\ufb33": "Hebrew Letter Dalet With Dagesh",
        "1": "One",
        "\U0001f600": "Emoji: Grinning Face",
        "\u0080": "Control",
        "\u00f6": "Latin Small Letter O With Diaeresis",
    }
    # By code point U+1F600 would sort last; as UTF-16 (D83D DE00) it sorts before U+FB33.
    assert list(json.loads(canonical_json(source))) == ["\r", "1", "\u0080", "\u00f6", "\u20ac", "\U0001f600", "\ufb33"]


@pytest.mark.parametrize(
    ("ieee", "expected"),
    [
        ("0000000000000000", "0"),
        ("8000000000000000", "0"),
        ("0000000000000001", "5e-324"),
        ("8000000000000001", "-5e-324"),
        ("7fefffffffffffff", "1.7976931348623157e+308"),
        ("ffefffffffffffff", "-1.7976931348623157e+308"),
        ("4340000000000000", "9007199254740992"),
        ("c340000000000000", "-9007199254740992"),
        ("4430000000000000", "295147905179352830000"),
        ("44b52d02c7e14af5", "9.999999999999997e+22"),
        ("44b52d02c7e14af6", "1e+23"),
        ("44b52d02c7e14af7", "1.0000000000000001e+23"),
        ("444b1ae4d6e2ef4e", "999999999999999700000"),
        ("444b1ae4d6e2ef4f", "999999999999999900000"),
        ("444b1ae4d6e2ef50", "1e+21"),
        ("3eb0c6f7a0b5ed8c", "9.999999999999997e-7"),
        ("3eb0c6f7a0b5ed8d", "0.000001"),
        ("41b3de4355555553", "333333333.3333332"),
        ("41b3de4355555554", "333333333.33333325"),
        ("41b3de4355555555", "333333333.3333333"),
        ("41b3de4355555556", "333333333.3333334"),
        ("41b3de4355555557", "333333333.33333343"),
        ("becbf647612f3696", "-0.0000033333333333333333"),
        ("43143ff3c1cb0959", "1424953923781206.2"),
    ],
)
def test_rfc8785_appendix_b_numbers(ieee: str, expected: str) -> None:
    (number,) = struct.unpack(">d", bytes.fromhex(ieee))
    assert canonical_json([number]) == f"[{expected}]"


# -- values JCS cannot hold, and everything else GitHub or Jira may send ----------------------------------------------


def test_floats_are_recorded_as_jcs_numbers() -> None:
    assert canonical_json({"points": 1.0, "big": 1e21, "tenth": 0.1, "rate": 2.5}) == (
        '{"big":1e+21,"points":1,"rate":2.5,"tenth":0.1}'
    )
    assert roundtrip({"tenth": 0.1, "big": 1e21, "neg": -0.5}) == {"tenth": 0.1, "big": 1e21, "neg": -0.5}


def test_integers_beyond_double_precision_are_kept_exactly() -> None:
    limit = 2**53 - 1  # the largest integer an IEEE double (JSON, per JCS) holds exactly, with its neighbours
    assert canonical_json([limit, -limit]) == "[9007199254740991,-9007199254740991]"
    assert parsed([BIG, -BIG, limit + 1, 10**30]) == [
        {"$ledger:int": "1152921504606846976"},
        {"$ledger:int": "-1152921504606846976"},
        {"$ledger:int": "9007199254740992"},
        {"$ledger:int": "1000000000000000000000000000000"},
    ]
    assert roundtrip({"id": BIG, "n": [10**30, -(2**64)]}) == {"id": BIG, "n": [10**30, -(2**64)]}


def test_non_finite_floats_are_tagged() -> None:
    assert parsed([math.inf, -math.inf]) == [{"$ledger:float": "Infinity"}, {"$ledger:float": "-Infinity"}]
    back = roundtrip([math.nan, math.inf, -math.inf])
    assert math.isnan(back[0]) and back[1:] == [math.inf, -math.inf]


def test_a_lone_surrogate_is_kept_as_its_utf16_code_unit() -> None:
    message = f"PAY-1 half an emoji {LONE} here"
    assert parsed({"message": message}) == {"message": {"$ledger:str-utf16": ["PAY-1 half an emoji ", 0xD83D, " here"]}}
    assert roundtrip({"message": message}) == {"message": message}
    assert roundtrip([LONE, "\udc00\ud800", f"{LONE}\U0001f600"]) == [LONE, "\udc00\ud800", f"{LONE}\U0001f600"]
    canonical_json({"message": message}).encode("utf-8")  # the stored text is valid UTF-8


def test_an_object_that_looks_encoded_is_escaped() -> None:
    lookalike = {"$ledger:int": "5"}
    assert parsed(lookalike) == {"$ledger:object": [["$ledger:int", "5"]]}
    assert roundtrip(lookalike) == lookalike
    assert roundtrip({"$ledger:object": [["a", 1]]}) == {"$ledger:object": [["a", 1]]}
    assert roundtrip({"$ledger:anything": {"$ledger:int": "7"}}) == {"$ledger:anything": {"$ledger:int": "7"}}
    # Only an object whose one key carries the prefix is a tag: with other keys it is written as it is.
    assert parsed({"$ledger:int": "5", "other": 1}) == {"$ledger:int": "5", "other": 1}
    assert roundtrip({"$ledger:int": "5", "other": 1}) == {"$ledger:int": "5", "other": 1}


def test_a_key_with_a_lone_surrogate_is_kept_in_utf16_order() -> None:
    value = {"\udc00": 1, "a": 2, "\U0001f600": 3}
    assert parsed(value) == {
        "$ledger:object": [["a", 2], ["\U0001f600", 3], [{"$ledger:str-utf16": [0xDC00]}, 1]],
    }
    assert roundtrip(value) == value


def test_datetimes_and_structure_as_before() -> None:
    when = datetime(2026, 11, 30, 13, 0, tzinfo=timezone(timedelta(hours=1)))
    value = {"b": 1, "a": ("x", None, True), "é": "naïve", "when": when}
    assert canonical_json(value) == '{"a":["x",null,true],"b":1,"when":"2026-11-30T12:00:00Z","é":"naïve"}'
    with pytest.raises(TypeError, match="naive datetime"):
        canonical_json({"at": datetime(2026, 11, 30, 12, 0)})
    with pytest.raises(TypeError, match=r"\$\.k: key 1 is not a string"):
        canonical_json({"k": {1: "x"}})
    with pytest.raises(TypeError, match=r"\$\.k: set is not JSON"):
        canonical_json({"k": {1}})


def test_the_stored_text_is_its_own_jcs_form() -> None:
    """What a third party does: parse the stored text with any JSON parser, and any JCS implementation gives it back."""
    value = {"a": [0.1, 1e21, BIG, LONE, {"$ledger:int": "5"}, {"\udc00": None}], "z": "\U0001f600 ok"}
    stored = canonical_json(value)
    assert rfc8785.dumps(json.loads(stored)).decode("utf-8") == stored


def test_decoding_refuses_what_the_encoder_never_writes() -> None:
    for bad in (
        {"$ledger:unknown": 1},
        {"$ledger:int": 5},
        {"$ledger:int": "12"},  # within a double's exact range: written as a plain number
        {"$ledger:int": "0012345678901234567890"},
        {"$ledger:float": "1.5"},
        {"$ledger:str-utf16": ["a", "b"]},
        {"$ledger:str-utf16": ["a"]},
        {"$ledger:str-utf16": [65]},
        {"$ledger:str-utf16": ["", 0xD800]},
        {"$ledger:object": [["a", 1], ["a", 2]]},
        {"$ledger:object": [["b", 1], ["a", 2]]},
        {"$ledger:object": [["a", 1], ["b", 2]]},  # an ordinary object needs no escape
        {"$ledger:object": [[1, 2]]},
    ):
        with pytest.raises(LedgerEncodingError):
            decode(bad)


def test_the_encoding_module_is_pure() -> None:
    source = (Path(__file__).resolve().parent.parent / "gating" / "ledger" / "encoding.py").read_text()
    assert impurities(source) == []


# -- in the database: new entries are v2, old v1 entries verify as they always did -----------------------------------


T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def insert_v1_entry(db: Database, sequence: int, prev_hash: str, payload: dict[str, Any]) -> str:
    """An entry exactly as the ledger wrote it before v2: Python's sorted JSON, UTF-8, no floats."""
    at = T0 + timedelta(seconds=sequence)
    envelope = {
        "v": 1,
        "kind": "deployment_decision",
        "sequence": sequence,
        "recorded_at": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "index": {"repository": "acme/payments"},
        "payload": payload,
    }
    stored = json.dumps(envelope, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    digest = entry_hash(prev_hash, stored)
    with db.engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO ledger_entries (sequence, prev_hash, hash, payload, kind, repository, created_at) "
                "VALUES (:s, :p, :h, :t, 'deployment_decision', 'acme/payments', :at)"
            ),
            {"s": sequence, "p": prev_hash, "h": digest, "t": stored, "at": at},
        )
    return digest


def test_new_entries_are_v2_and_hold_what_v1_could_not(db: Database) -> None:
    ledger = Ledger(db)
    evidence = {
        "story_points": 2.5,
        "field_id": BIG,
        "message": f"fix {LONE}",
        "lookalike": {"$ledger:int": "5"},
    }
    view = ledger.append("deployment_decision", evidence, index={"repository": "acme/payments", "deployment_id": BIG})
    assert json.loads(view.payload)["v"] == 2
    assert view.data == evidence
    assert view.content()["index"] == {"repository": "acme/payments", "deployment_id": BIG}
    result = ledger.verify()
    assert result.ok, result.reason


def test_old_v1_entries_verify_unchanged_and_are_read_literally(db: Database) -> None:
    # A v1 entry could hold an object that looks like a v2 tag: it is data, never decoded.
    first = insert_v1_entry(db, 1, GENESIS, {"decision": "approved", "odd": {"$ledger:int": "5"}, "é": "naïve"})
    insert_v1_entry(db, 2, first, {"decision": "rejected", "\U0001f600": 1, "\ufb33": 2})
    ledger = Ledger(db)
    ledger.append("deployment_decision", {"decision": "approved", "points": 0.5}, index={"repository": "acme/payments"})
    result = ledger.verify()
    assert (result.ok, result.count) == (True, 3), result.reason
    old, older, new = (ledger.at_sequence(n) for n in (1, 2, 3))
    assert old is not None and older is not None and new is not None
    assert old.data["odd"] == {"$ledger:int": "5"}
    assert json.loads(older.payload)["v"] == 1 and json.loads(new.payload)["v"] == 2
    assert new.data == {"decision": "approved", "points": 0.5}

    with db.engine.begin() as connection:
        connection.execute(text("UPDATE ledger_entries SET payload = REPLACE(payload, 'rejected', 'approved')"))
    assert ledger.verify().first_bad_sequence == 2


def test_evidence_with_half_an_emoji_exports_as_json_and_html(db: Database, database_url: str, tmp_path: Path) -> None:
    evidence = {"repository": "acme/payments", "commits": [{"sha": "a" * 40, "message": f"fix {LONE}"}], "tickets": []}
    view = Ledger(db).append("deployment_decision", evidence, index={"repository": "acme/payments"})
    env = {"DATABASE_URL": database_url, "COUNTERSIGN_SIGNING_KEY_PATH": ""}
    exported = CliRunner().invoke(main, ["export", "--id", str(view.id)], env=env, catch_exceptions=False)
    assert exported.exit_code == 0, exported.output
    assert json.loads(exported.stdout)["evidence"]["commits"][0]["message"] == f"fix {LONE}"  # exact, as an escape
    page = tmp_path / "dossier.html"
    args = ["export", "--id", str(view.id), "--format", "html", "--output", str(page)]
    printed = CliRunner().invoke(main, args, env=env, catch_exceptions=False)
    assert printed.exit_code == 0, printed.output
    assert '<td data-label="Message">fix \ufffd</td>' in page.read_text(encoding="utf-8")


# -- end to end: a deployment whose evidence v1 could not write ------------------------------------------------------


def test_a_decimal_and_a_huge_integer_in_the_approval_record_and_half_an_emoji_are_recorded_and_answered(
    live_app: LiveApp, repo: str
) -> None:
    jira = live_app.jira
    jira.add_ticket("PAY-1", f"Refunds {LONE}", status="In Review")
    # Story points set on the transition screen land in the same changelog history as the approval.
    points = {"field": "Story Points", "fieldtype": "custom", "fieldId": "customfield_10016"}
    points |= {"from": None, "fromString": None, "to": 2.5, "toString": "2.5"}
    rank = {"field": "Rank", "fieldtype": "custom", "fieldId": "customfield_10019"}
    rank |= {"from": None, "fromString": None, "to": BIG, "toString": str(BIG)}
    jira.transition("PAY-1", "Approved", by="acc-carol", extra_items=[points, rank])
    message = "PAY-1 refunds \U0001f600"
    sha = setup_release(live_app, repo, [message])
    deploy(live_app, repo, sha)

    (answer,) = answers(live_app, repo)
    assert answer["state"] == "approved", answer["comment"]
    (entry,) = ledger_entries(live_app)
    evidence = entry["payload"]
    (ticket,) = evidence["tickets"]
    assert ticket["summary"] == f"Refunds {LONE}"
    items = {item["field"]: item for item in ticket["approval_record"]["items"]}
    assert items["Story Points"]["to"] == 2.5 and items["Rank"]["to"] == BIG
    assert [c["message"] for c in evidence["commits"]] == [message]
    result = live_app.services.ledger.verify()
    assert result.ok, result.reason

    (view,) = live_app.services.ledger.search(limit=10)
    dossier = load_dossier(live_app.services.ledger, view.id, EVERYTHING)
    assert dossier is not None
    assert dossier["evidence"]["tickets"][0]["approval_record"]["items"][1]["to"] == 2.5
    assert dossier["evidence"]["tickets"][0]["summary"] == f"Refunds {LONE}"
    assert dossier["evidence"]["commits"][0]["message"] == message
