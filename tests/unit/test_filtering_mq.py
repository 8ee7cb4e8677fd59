"""FilterCriteria on Amazon MQ messages: metadata as delivered, ``data`` decoded, and the
metadata-only fallback when the data's format differs from the pattern's."""

from __future__ import annotations

import base64
import json

from poller.filtering import MqView, ShapedFilters


def message(data: bytes, **meta: object) -> bytes:
    doc = {"messageID": "ID:1", "messageType": "jms/text-message",
           "basicProperties": {"contentType": "text/plain", "priority": 3}, **meta,
           "data": base64.b64encode(data).decode()}
    return json.dumps(doc).encode()


def keep(patterns: list[str], fragment: bytes) -> bool:
    return ShapedFilters(patterns, ("data",)).matches(MqView(fragment))


def test_json_data_and_metadata() -> None:
    order = message(b'{"kind": "order", "total": 12}')
    assert keep(['{"data": {"kind": ["order"]}}'], order)
    assert not keep(['{"data": {"kind": ["refund"]}}'], order)
    assert keep(['{"data": {"total": [{"numeric": [">", 10]}]}, "messageType": '
                 '["jms/text-message"]}'], order)
    assert keep(['{"basicProperties": {"priority": [3]}}'], order)
    assert not keep(['{"basicProperties": {"priority": [4]}}'], order)


def test_plain_text_and_format_mismatch_fall_back_to_metadata() -> None:
    text = message(b"hello world")
    assert keep(['{"data": [{"prefix": "hello"}]}'], text)
    assert not keep(['{"data": [{"prefix": "bye"}]}'], text)
    # an object pattern on text data: the data rules are skipped, the metadata decides
    assert keep(['{"data": {"kind": ["order"]}, "messageID": ["ID:1"]}'], text)
    assert not keep(['{"data": {"kind": ["order"]}, "messageID": ["ID:2"]}'], text)
    binary = message(b"\xff\xfe")
    assert keep(['{"data": [{"prefix": "x"}], "messageType": ["jms/text-message"]}'], binary)
