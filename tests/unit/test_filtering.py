"""FilterCriteria pattern language: every operator against records that match and that don't,
the validation Lambda applies, and the Kinesis view (lazy base64 + JSON)."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from poller.filtering import (
    NO_MATCH,
    SKIP,
    FilterSet,
    LazyView,
    PatternError,
    compile_pattern,
    filter_criteria_problems,
)
from poller.sources.kinesis import KinesisView, filter_records

# (pattern, record, expected)
CASES: list[tuple[dict[str, Any], dict[str, Any], bool]] = [
    # exact values: strings, numbers, booleans, null, empty string; OR inside the array
    ({"a": ["x"]}, {"a": "x"}, True),
    ({"a": ["x"]}, {"a": "X"}, False),
    ({"a": ["x", "y"]}, {"a": "y"}, True),
    ({"a": [5]}, {"a": 5}, True),
    ({"a": [5]}, {"a": "5"}, False),
    ({"a": ["5"]}, {"a": 5}, False),
    ({"a": [True]}, {"a": True}, True),
    ({"a": [True]}, {"a": 1}, False),
    ({"a": [None]}, {"a": None}, True),
    ({"a": [None]}, {}, False),
    ({"a": [""]}, {"a": ""}, True),
    ({"a": [""]}, {"a": "x"}, False),
    # AND across keys; a named field must exist
    ({"a": ["x"], "b": ["y"]}, {"a": "x", "b": "y"}, True),
    ({"a": ["x"], "b": ["y"]}, {"a": "x", "b": "z"}, False),
    ({"a": ["x"], "b": ["y"]}, {"a": "x"}, False),
    ({"a": ["x"]}, {"a": "x", "other": 1}, True),
    # arrays in the record: any element
    ({"a": ["x"]}, {"a": ["w", "x"]}, True),
    ({"a": ["x"]}, {"a": ["w", "v"]}, False),
    ({"a": ["x"]}, {"a": []}, False),
    # prefix / suffix (also ignoring case)
    ({"a": [{"prefix": "us-"}]}, {"a": "us-east-1"}, True),
    ({"a": [{"prefix": "us-"}]}, {"a": "eu-west-1"}, False),
    ({"a": [{"prefix": "us-"}]}, {"a": 5}, False),
    ({"a": [{"prefix": {"equals-ignore-case": "US-"}}]}, {"a": "us-east-1"}, True),
    ({"a": [{"suffix": ".png"}]}, {"a": "cat.png"}, True),
    ({"a": [{"suffix": ".png"}]}, {"a": "cat.jpg"}, False),
    ({"a": [{"suffix": {"equals-ignore-case": ".PNG"}}]}, {"a": "cat.png"}, True),
    # equals-ignore-case
    ({"a": [{"equals-ignore-case": "alice"}]}, {"a": "ALICE"}, True),
    ({"a": [{"equals-ignore-case": "alice"}]}, {"a": "alicia"}, False),
    # anything-but: values, one value, numbers, prefix, suffix, ignore-case; field must exist
    ({"a": [{"anything-but": ["Raining"]}]}, {"a": "Sunny"}, True),
    ({"a": [{"anything-but": ["Raining"]}]}, {"a": "Raining"}, False),
    ({"a": [{"anything-but": ["Raining"]}]}, {}, False),
    ({"a": [{"anything-but": "Raining"}]}, {"a": "Raining"}, False),
    ({"a": [{"anything-but": [1, 2]}]}, {"a": 3}, True),
    ({"a": [{"anything-but": [1, 2]}]}, {"a": 2.0}, False),
    ({"a": [{"anything-but": {"prefix": "init"}}]}, {"a": "initialize"}, False),
    ({"a": [{"anything-but": {"prefix": "init"}}]}, {"a": "start"}, True),
    ({"a": [{"anything-but": {"suffix": ".tmp"}}]}, {"a": "x.tmp"}, False),
    ({"a": [{"anything-but": {"suffix": ".tmp"}}]}, {"a": "x.txt"}, True),
    ({"a": [{"anything-but": {"equals-ignore-case": ["A", "b"]}}]}, {"a": "B"}, False),
    ({"a": [{"anything-but": {"equals-ignore-case": ["A", "b"]}}]}, {"a": "c"}, True),
    # numeric: equals, open and closed ranges, bounds, non-numbers
    ({"p": [{"numeric": ["=", 100]}]}, {"p": 100}, True),
    ({"p": [{"numeric": ["=", 100]}]}, {"p": 100.0}, True),
    ({"p": [{"numeric": ["=", 100]}]}, {"p": 101}, False),
    ({"p": [{"numeric": [">", 10, "<=", 20]}]}, {"p": 20}, True),
    ({"p": [{"numeric": [">", 10, "<=", 20]}]}, {"p": 10}, False),
    ({"p": [{"numeric": [">", 10, "<=", 20]}]}, {"p": 20.5}, False),
    ({"p": [{"numeric": [">=", 10, "<", 20]}]}, {"p": 10}, True),
    ({"p": [{"numeric": ["<", 0]}]}, {"p": -0.5}, True),
    ({"p": [{"numeric": ["<", 0]}]}, {"p": "-1"}, False),
    ({"p": [{"numeric": ["<", 0]}]}, {"p": [5, -1]}, True),
    # exists
    ({"a": [{"exists": True}]}, {"a": "x"}, True),
    ({"a": [{"exists": True}]}, {"a": None}, True),
    ({"a": [{"exists": True}]}, {}, False),
    ({"a": [{"exists": True}]}, {"a": {"b": 1}}, False),
    ({"a": [{"exists": False}]}, {}, True),
    ({"a": [{"exists": False}]}, {"a": 1}, False),
    ({"a": {"b": [{"exists": False}]}}, {}, True),
    ({"a": {"b": [{"exists": False}]}}, {"a": {"c": 1}}, True),
    ({"a": {"b": [{"exists": False}]}}, {"a": {"b": 1}}, False),
    # exists ORed with other values of the same array
    ({"a": [{"exists": False}, "x"]}, {}, True),
    ({"a": [{"exists": False}, "x"]}, {"a": "x"}, True),
    ({"a": [{"exists": False}, "x"]}, {"a": "y"}, False),
    # wildcard (with an escaped star)
    ({"f": [{"wildcard": "dir/*.png"}]}, {"f": "dir/a/b.png"}, True),
    ({"f": [{"wildcard": "dir/*.png"}]}, {"f": "dir/a.jpg"}, False),
    ({"f": [{"wildcard": "a*b*c"}]}, {"f": "abc"}, True),
    ({"f": [{"wildcard": "a\\*"}]}, {"f": "a*"}, True),
    ({"f": [{"wildcard": "a\\*"}]}, {"f": "ab"}, False),
    # nested objects and arrays of objects
    ({"d": {"k": {"ID": {"N": ["101"]}}}}, {"d": {"k": {"ID": {"N": "101"}}}}, True),
    ({"d": {"k": {"ID": {"N": ["101"]}}}}, {"d": {"k": {"ID": {"N": "102"}}}}, False),
    ({"d": {"k": ["x"]}}, {"d": "not an object"}, False),
    ({"d": {"k": ["x"]}}, {"d": [{"k": "y"}, {"k": "x"}]}, True),
    ({"d": {"k": ["x"]}}, {}, False),
    # $or: alternatives at one level, combined with other keys (AND)
    ({"$or": [{"a": ["x"]}, {"b": [{"numeric": [">", 5]}]}]}, {"b": 6}, True),
    ({"$or": [{"a": ["x"]}, {"b": [{"numeric": [">", 5]}]}]}, {"a": "y", "b": 1}, False),
    ({"c": ["z"], "$or": [{"a": ["x"]}, {"b": ["y"]}]}, {"c": "z", "b": "y"}, True),
    ({"c": ["z"], "$or": [{"a": ["x"]}, {"b": ["y"]}]}, {"c": "q", "b": "y"}, False),
    ({"d": {"$or": [{"a": ["x"]}, {"b": ["y"]}]}}, {"d": {"b": "y"}}, True),
    # several rules on one key are ORed
    ({"a": [{"prefix": "x"}, {"numeric": [">", 3]}, "q"]}, {"a": 4}, True),
    ({"a": [{"prefix": "x"}, {"numeric": [">", 3]}, "q"]}, {"a": "q"}, True),
    ({"a": [{"prefix": "x"}, {"numeric": [">", 3]}, "q"]}, {"a": "r"}, False),
]


@pytest.mark.parametrize(("pattern", "record", "expected"), CASES,
                         ids=[f"{i}-{json.dumps(c[0])[:50]}" for i, c in enumerate(CASES)])
def test_pattern_table(pattern: dict[str, Any], record: dict[str, Any], expected: bool) -> None:
    assert compile_pattern(json.dumps(pattern))(record) is expected


def test_filters_are_ored() -> None:
    fs = FilterSet([json.dumps({"a": ["x"]}), json.dumps({"b": ["y"]})])
    assert fs.matches({"a": "x"}) and fs.matches({"b": "y"})
    assert not fs.matches({"a": "y", "b": "x"})
    assert fs.reads == frozenset({"a", "b"})


def test_duplicate_key_last_wins() -> None:
    assert compile_pattern('{"a": ["x"], "a": ["y"]}')({"a": "y"})
    assert not compile_pattern('{"a": ["x"], "a": ["y"]}')({"a": "x"})


def test_lazy_view_computes_once_and_only_when_read() -> None:
    calls: list[int] = []

    def data() -> Any:
        calls.append(1)
        return {"v": 1}

    fs = FilterSet(['{"k": ["a"]}'])
    assert fs.matches(LazyView({"k": "a"}, {"data": data}))
    assert calls == []
    both = FilterSet(['{"data": {"v": [2]}}', '{"data": {"v": [1]}}'])
    assert both.matches(LazyView({"k": "a"}, {"data": data}))
    assert calls == [1]


def test_sentinels_no_match_and_skip() -> None:
    fs = FilterSet(['{"k": ["a"], "data": {"v": [1]}}'])
    assert not fs.matches(LazyView({"k": "a"}, {"data": lambda: NO_MATCH}))
    assert fs.matches(LazyView({"k": "a"}, {"data": lambda: SKIP}))
    assert not fs.matches(LazyView({"k": "b"}, {"data": lambda: SKIP}))
    assert not FilterSet(['{"data": [{"exists": false}]}']).matches(
        LazyView({}, {"data": lambda: NO_MATCH}))


INVALID: list[tuple[str, str]] = [
    ("not json", "not valid JSON"),
    ('["a"]', "must be a JSON object"),
    ("{}", "must not be an empty object"),
    ('{"a": "x"}', "must be an array"),
    ('{"a": 5}', "must be an array"),
    ('{"a": []}', "must not be an empty array"),
    ('{"a": [["x"]]}', "arrays inside"),
    ('{"a": {}}', "must not be an empty object"),
    ('{"a": [{"prefix": 5}]}', "prefix: must be a string"),
    ('{"a": [{"suffix": ["x"]}]}', "suffix: must be a string"),
    ('{"a": [{"equals-ignore-case": 1}]}', "equals-ignore-case: must be a string"),
    ('{"a": [{"wildcard": "a**b"}]}', "consecutive wildcard"),
    ('{"a": [{"numeric": [">", "5"]}]}', "must be a number"),
    ('{"a": [{"numeric": ["~", 5]}]}', "unknown numeric operator"),
    ('{"a": [{"numeric": [">", 5, ">", 6]}]}', "at most one lower bound"),
    ('{"a": [{"numeric": ["<", 5, "<", 6]}]}', "at most one upper bound"),
    ('{"a": [{"numeric": [">", 9, "<", 3]}]}', "lower bound must be below"),
    ('{"a": [{"numeric": ["=", 1, "<", 3]}]}', "= cannot be combined"),
    ('{"a": [{"numeric": [">"]}]}', "must be [op, number]"),
    ('{"a": [{"numeric": [">", 6e9]}]}', "outside the supported range"),
    ('{"a": [{"exists": "yes"}]}', "exists must be true or false"),
    ('{"a": [{"anything-but": []}]}', "must not be an empty array"),
    ('{"a": [{"anything-but": ["x", 1]}]}', "all strings or all numbers"),
    ('{"a": [{"anything-but": [null]}]}', "strings or numbers"),
    ('{"a": [{"anything-but": {"numeric": [">", 1]}}]}', "anything-but: takes"),
    ('{"a": [{"cidr": "10.0.0.0/24"}]}', "cidr is not supported"),
    ('{"a": [{"between": [1, 2]}]}', "unknown operator 'between'"),
    ('{"a": [{"prefix": "x", "suffix": "y"}]}', "exactly one operator"),
    ('{"$or": [{"a": ["x"]}]}', "at least 2 pattern objects"),
    ('{"$or": "x"}', "at least 2 pattern objects"),
]


@pytest.mark.parametrize(("text", "problem"), INVALID, ids=[t for t, _ in INVALID])
def test_invalid_patterns_are_rejected(text: str, problem: str) -> None:
    with pytest.raises(PatternError) as err:
        compile_pattern(text)
    assert problem in str(err.value)


def test_every_problem_of_a_pattern_is_listed() -> None:
    with pytest.raises(PatternError) as err:
        compile_pattern('{"a": "x", "b": [{"prefix": 1}], "c": {"d": []}}')
    assert len(err.value.problems) == 3
    assert [p.split(":")[0] for p in err.value.problems] == ["a", "b[0].prefix", "c.d"]


def test_criteria_problems_name_the_filter() -> None:
    long = json.dumps({"a": ["x" * 4100]})
    criteria = {"Filters": [{"Pattern": '{"a": ["ok"]}'}, {"Pattern": "nope"},
                            {"Pattern": long}, {"Pattern": {"a": ["x"]}}, {"Other": 1},
                            {"Pattern": '{"data": ["x"]}'}]}
    problems = filter_criteria_problems(criteria, 5, frozenset({"data"}))
    where = [p for p, _ in problems]
    assert where == ["Filters", "Filters[1].Pattern", "Filters[2].Pattern", "Filters[3].Pattern",
                     "Filters[4]", "Filters[5].Pattern"]
    text = " | ".join(m for _, m in problems)
    assert "6 filters; at most 5" in text and "max_filters_per_mapping" in text
    assert "not valid JSON" in text and "4096" in text and "must be a string" in text
    assert "data must be a JSON object pattern" in text
    assert filter_criteria_problems({"Filters": [{"Pattern": '{"a": ["x"]}'}] * 10}, 10) == []
    assert filter_criteria_problems(None) == []
    assert filter_criteria_problems({"Filters": []}) == []
    assert filter_criteria_problems([1]) != []


def _item(data: bytes, key: str = "k", seq: str = "49600000000000000000000000000000000001"
          ) -> dict[str, Any]:
    return {"SequenceNumber": seq, "PartitionKey": key, "ApproximateArrivalTimestamp": 1.7e9,
            "Data": base64.b64encode(data).decode()}


def test_kinesis_view_fields_and_lazy_data() -> None:
    item = _item(b'{"kind": "order", "amount": 12}')
    view = KinesisView(item)
    assert view.get("partitionKey") == "k"
    assert view.get("sequenceNumber") == item["SequenceNumber"]
    assert view.get("kinesisSchemaVersion") == "1.0"
    assert view.get("approximateArrivalTimestamp") == 1.7e9
    assert view.get("eventSource", "absent") == "absent"  # added after filtering in Lambda
    assert view.get("data") == {"kind": "order", "amount": 12}
    assert KinesisView(_item(b"\xff not json")).get("data") is NO_MATCH
    fs = FilterSet(['{"partitionKey": ["k"]}'])
    unreadable = {"SequenceNumber": "1", "PartitionKey": "k", "ApproximateArrivalTimestamp": 1.0,
                  "Data": object()}  # decoding it would raise: proves data is never touched
    assert fs.matches(KinesisView(unreadable))


def test_kinesis_non_json_data_fails_data_patterns_only() -> None:
    text = KinesisView(_item(b"plain text"))
    assert not FilterSet(['{"data": {"a": [{"exists": false}]}}']).matches(text)
    assert FilterSet(['{"partitionKey": ["k"]}']).matches(text)


@pytest.mark.parametrize("impl", ["python", "cython"])
def test_filter_records_keeps_order_and_marks_filtered_done(impl: str) -> None:
    from poller import batching
    mod = batching.pure if impl == "python" else batching.extension
    if mod is None:
        pytest.skip("Cython batcher not built")
    encoder = mod.KinesisEncoder("shardId-0", "us-east-1",
                                 "arn:aws:kinesis:us-east-1:1:stream/s", "arn:aws:iam::1:role/r")
    raw = [_item(json.dumps({"v": i}).encode(), seq=str(100 + i)) for i in range(6)]
    fs = FilterSet(['{"data": {"v": [{"numeric": [">=", 3]}]}}'])
    records, filtered = filter_records(fs, encoder, raw)
    assert filtered == 3
    assert [r.seq for r in records] == [str(100 + i) for i in range(6)]
    assert [r.done for r in records] == [True, True, True, False, False, False]
    assert records[3].fragment == encoder.encode([raw[3]])[0].fragment
    all_kept, none = filter_records(FilterSet(['{"partitionKey": ["k"]}']), encoder, raw)
    assert none == 0 and not any(r.done for r in all_kept)
