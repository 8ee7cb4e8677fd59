"""FilterCriteria: Lambda's event filter patterns (the EventBridge pattern language), compiled once.

Shortest use::

    filters = FilterSet.compile(['{"data": {"kind": ["order"]}}'])   # PatternError if invalid
    keep = filters.matches(view)      # view: what a source exposes of one record

A *view* is any object with ``get(key, default)`` returning the record's top-level field as the
pattern sees it. Sources build one per record with :class:`LazyView`: plain metadata fields
plus lazily computed ones (the record's data, decoded and parsed only when a pattern reads it)::

    view = LazyView({"partitionKey": pk, "sequenceNumber": seq}, {"data": lambda: parse(raw)})

A lazy accessor may return :data:`NO_MATCH` (every rule on that key fails: Kinesis data that is
not JSON) or :data:`SKIP` (rules on that key are ignored: Kafka's fall back to metadata-only
matching). :attr:`FilterSet.reads` names the top-level keys any pattern reads, so a source can
skip work for keys nobody filters on.

Semantics (EventBridge): filters are ORed; keys of a pattern are ANDed; the values in a key's
array are ORed; an array in the record matches when any element matches; a field the pattern
names must exist, except for ``exists: false``.
"""

from __future__ import annotations

import base64
import json
import math
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Protocol

__all__ = [
    "DEFAULT_MAX_FILTERS",
    "MAX_FILTERS_LIMIT",
    "MAX_PATTERN_CHARS",
    "NO_MATCH",
    "SKIP",
    "FilterSet",
    "LazyView",
    "MqView",
    "PatternError",
    "RecordView",
    "ShapedFilters",
    "compile_pattern",
    "filter_criteria_problems",
    "parse_data",
]

MAX_PATTERN_CHARS = 4096
DEFAULT_MAX_FILTERS = 5  # AWS's default quota per event source mapping
MAX_FILTERS_LIMIT = 10  # the most the quota can be raised to
NUMERIC_LIMIT = 5e9  # EventBridge's numeric matching range


class _Sentinel:
    def __init__(self, name: str) -> None:
        self._name = name

    def __repr__(self) -> str:
        return self._name


MISSING: Any = _Sentinel("MISSING")
NO_MATCH: Any = _Sentinel("NO_MATCH")
SKIP: Any = _Sentinel("SKIP")


_EMPTY: dict[str, Any] = {}


class RecordView(Protocol):
    def get(self, key: str, default: Any = ..., /) -> Any: ...


class LazyView:
    """A record as filters see it: ``fields`` as they are, ``lazy`` computed on first read
    (and then cached in ``fields``)."""

    __slots__ = ("_fields", "_lazy")

    def __init__(self, fields: dict[str, Any],
                 lazy: Mapping[str, Callable[[], Any]] | None = None) -> None:
        self._fields = fields
        self._lazy = lazy

    def get(self, key: str, default: Any = None, /) -> Any:
        fields = self._fields
        if key in fields:
            return fields[key]
        lazy = self._lazy
        if lazy is not None and key in lazy:
            value = fields[key] = lazy[key]()
            return value
        return default


class PatternError(ValueError):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


Matcher = Callable[[Any], bool]  # one rule, applied to one leaf value
Test = Callable[[Any], bool]  # a pattern object, applied to one record object (or view)


def _is_number(v: Any) -> bool:
    return (type(v) is int or type(v) is float) and math.isfinite(v)


def _leaves(value: Any) -> Iterator[Any]:
    """Leaf values at a field: arrays expand (any element may match), objects are not leaves."""
    if type(value) is list:
        for item in value:
            yield from _leaves(item)
    elif type(value) is not dict:
        yield value


def _wildcard_regex(text: str) -> re.Pattern[str]:
    out: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text) and text[i + 1] in "*\\":
            out.append(re.escape(text[i + 1]))
            i += 2
            continue
        out.append(".*" if ch == "*" else re.escape(ch))
        i += 1
    return re.compile("".join(out), re.DOTALL)


class _Compiler:
    def __init__(self) -> None:
        self.problems: list[str] = []

    def bad(self, where: str, message: str) -> None:
        self.problems.append(f"{where}: {message}" if where else message)

    # -- a pattern object: keys ANDed, "$or" alternatives --------------------------------------
    def obj(self, pattern: Any, where: str) -> Test:
        if type(pattern) is not dict:
            self.bad(where, "must be a JSON object")
            return lambda _r: False
        if not pattern:
            self.bad(where, "must not be an empty object")
            return lambda _r: False
        tests: list[Test] = []
        for key, value in pattern.items():
            path = f"{where}.{key}" if where else key
            if key == "$or":
                tests.append(self.or_(value, path, where))
            elif type(value) is dict:
                tests.append(self.nested(key, self.obj(value, path)))
            elif type(value) is list:
                tests.append(self.field(key, value, path))
            else:
                self.bad(path, "a pattern value must be an array of match values or an object "
                         f"(got {json.dumps(value)})")
        if len(tests) == 1:
            return tests[0]
        tests_t = tuple(tests)

        def test_all(r: Any) -> bool:
            for t in tests_t:
                if not t(r):
                    return False
            return True
        return test_all

    def or_(self, value: Any, path: str, where: str) -> Test:
        if type(value) is not list or len(value) < 2:
            self.bad(path, "must be an array of at least 2 pattern objects")
            return lambda _r: False
        alts = tuple(self.obj(v, f"{path}[{i}]") for i, v in enumerate(value))
        return lambda r: any(a(r) for a in alts)

    @staticmethod
    def nested(key: str, inner: Test) -> Test:
        def test(r: Any) -> bool:
            value = r.get(key, MISSING)
            if value is SKIP:
                return True
            if type(value) is dict:
                return inner(value)
            if type(value) is list:
                return any(type(v) is dict and inner(v) for v in value)
            if value is NO_MATCH:
                return False
            return inner(_EMPTY)  # absent: only exists:false rules can hold
        return test

    def field(self, key: str, rules: list[Any], path: str) -> Test:
        if not rules:
            self.bad(path, "must not be an empty array")
        matchers: list[Matcher] = []
        exists: bool | None = None
        for i, rule in enumerate(rules):
            where = f"{path}[{i}]"
            if type(rule) is dict:
                if len(rule) == 1 and "exists" in rule:
                    if type(rule["exists"]) is not bool:
                        self.bad(where, "exists must be true or false")
                    elif exists is not None and exists != rule["exists"]:
                        self.bad(where, "exists: true and exists: false contradict each other")
                    else:
                        exists = rule["exists"]
                    continue
                matchers.append(self.operator(rule, where))
            elif type(rule) is list:
                self.bad(where, "arrays inside a match array are not allowed")
            else:
                matchers.append(self.exact(rule))
        ms = tuple(matchers)
        if exists is not None:
            want = exists

            def test_exists(r: Any) -> bool:  # other values in the array are ORed with it
                value = r.get(key, MISSING)
                if value is SKIP:
                    return True
                if value is NO_MATCH:
                    return False
                has = any(True for _ in _leaves(value)) if value is not MISSING else False
                if has is want:
                    return True
                return any(m(leaf) for leaf in _leaves(value) for m in ms) if has else False
            return test_exists

        def test(r: Any) -> bool:
            value = r.get(key, MISSING)
            if value is MISSING or value is NO_MATCH:
                return False
            if value is SKIP:
                return True
            kind = type(value)
            if kind is not list and kind is not dict:
                for m in ms:
                    if m(value):
                        return True
                return False
            for leaf in _leaves(value):
                for m in ms:
                    if m(leaf):
                        return True
            return False
        return test

    @staticmethod
    def exact(rule: Any) -> Matcher:
        kind = type(rule)
        if rule is None:
            return lambda v: v is None
        if kind is bool:
            return lambda v: v is rule
        return lambda v: type(v) is kind and v == rule

    # -- operators ------------------------------------------------------------------------------
    def operator(self, rule: dict[str, Any], where: str) -> Matcher:
        if len(rule) != 1:
            self.bad(where, f"a match object holds exactly one operator (got {sorted(rule)})")
            return lambda _v: False
        (op, arg), = rule.items()
        path = f"{where}.{op}"
        if op == "prefix":
            return self.affix(arg, path, str.startswith)
        if op == "suffix":
            return self.affix(arg, path, str.endswith)
        if op == "equals-ignore-case":
            if type(arg) is not str:
                self.bad(path, "must be a string")
                return lambda _v: False
            folded = arg.lower()
            return lambda v: type(v) is str and v.lower() == folded
        if op == "wildcard":
            if type(arg) is not str:
                self.bad(path, "must be a string")
                return lambda _v: False
            if "**" in arg.replace("\\*", ""):
                self.bad(path, "consecutive wildcard characters are not allowed")
            rx = _wildcard_regex(arg)
            return lambda v: type(v) is str and rx.fullmatch(v) is not None
        if op == "numeric":
            return self.numeric(arg, path)
        if op == "anything-but":
            return self.anything_but(arg, path)
        if op == "cidr":
            self.bad(path, "cidr is not supported by Lambda event filtering")
            return lambda _v: False
        self.bad(where, f"unknown operator {op!r} (use prefix, suffix, anything-but, numeric, "
                 "exists, equals-ignore-case or wildcard)")
        return lambda _v: False

    def affix(self, arg: Any, path: str, test: Callable[[str, str], bool]) -> Matcher:
        if type(arg) is dict and len(arg) == 1 and type(arg.get("equals-ignore-case")) is str:
            folded = arg["equals-ignore-case"].lower()
            return lambda v: type(v) is str and test(v.lower(), folded)
        if type(arg) is not str:
            self.bad(path, "must be a string (or {\"equals-ignore-case\": string})")
            return lambda _v: False
        return lambda v: type(v) is str and test(v, arg)

    def numeric(self, arg: Any, path: str) -> Matcher:
        ops = {"<": lambda a, b: a < b, "<=": lambda a, b: a <= b, "=": lambda a, b: a == b,
               ">": lambda a, b: a > b, ">=": lambda a, b: a >= b}
        if type(arg) is not list or len(arg) not in (2, 4):
            self.bad(path, 'must be [op, number] or [lower-op, number, upper-op, number] '
                     '(ops: <, <=, =, >, >=)')
            return lambda _v: False
        checks: list[tuple[Callable[[float, float], bool], float]] = []
        lower: float | None = None
        upper: float | None = None
        for i in range(0, len(arg), 2):
            op, num = arg[i], arg[i + 1]
            if op not in ops:
                self.bad(path, f"unknown numeric operator {json.dumps(op)}")
                return lambda _v: False
            if not _is_number(num) or type(num) is bool:
                self.bad(path, f"{json.dumps(num)} after {op!r} must be a number")
                return lambda _v: False
            if abs(num) > NUMERIC_LIMIT:
                self.bad(path, f"{num} is outside the supported range -5e9..5e9")
            if op == "=":
                if len(arg) != 2:
                    self.bad(path, "= cannot be combined with a range")
            elif op in (">", ">="):
                if lower is not None:
                    self.bad(path, "at most one lower bound (> or >=)")
                lower = num
            elif upper is not None:
                self.bad(path, "at most one upper bound (< or <=)")
            else:
                upper = num
            checks.append((ops[op], float(num)))
        if lower is not None and upper is not None and lower >= upper:
            self.bad(path, "the lower bound must be below the upper bound")
        cs = tuple(checks)
        return lambda v: _is_number(v) and all(f(v, n) for f, n in cs)

    def anything_but(self, arg: Any, path: str) -> Matcher:
        if type(arg) is dict:
            if len(arg) == 1:
                (op, inner), = arg.items()
                if op in ("prefix", "suffix"):
                    m = self.affix(inner, f"{path}.{op}", str.startswith if op == "prefix"
                                   else str.endswith)
                    return lambda v: type(v) is str and not m(v)
                if op == "equals-ignore-case":
                    values = inner if type(inner) is list else [inner]
                    if not values or any(type(x) is not str for x in values):
                        self.bad(f"{path}.{op}", "must be a string or an array of strings")
                        return lambda _v: False
                    folded = frozenset(x.lower() for x in values)
                    return lambda v: type(v) is str and v.lower() not in folded
                if op == "wildcard":
                    m = self.operator({"wildcard": inner}, path)
                    return lambda v: type(v) is str and not m(v)
            self.bad(path, "takes a value, an array of values, or one of prefix, suffix, "
                     "equals-ignore-case, wildcard")
            return lambda _v: False
        values = arg if type(arg) is list else [arg]
        if not values:
            self.bad(path, "must not be an empty array")
        strings = [x for x in values if type(x) is str]
        numbers = [x for x in values if _is_number(x) and type(x) is not bool]
        if len(strings) + len(numbers) != len(values):
            self.bad(path, "values must be strings or numbers")
        elif strings and numbers:
            self.bad(path, "values must be all strings or all numbers")
        str_set = frozenset(strings)
        num_set = frozenset(float(x) for x in numbers)

        def m_but(v: Any) -> bool:
            if type(v) is str:
                return v not in str_set
            if _is_number(v):
                return float(v) not in num_set
            return True
        return m_but


def compile_pattern(text: str) -> Test:
    """A predicate over a record view; PatternError lists every problem of the pattern."""
    problems: list[str] = []
    if type(text) is not str:
        raise PatternError(["Pattern must be a string holding a JSON object"])
    if len(text) > MAX_PATTERN_CHARS:
        problems.append(f"Pattern is {len(text)} characters; the limit is {MAX_PATTERN_CHARS}")
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PatternError([*problems, f"Pattern is not valid JSON ({exc.msg} at line "
                            f"{exc.lineno} column {exc.colno})"]) from None
    c = _Compiler()
    test = c.obj(parsed, "")
    problems.extend(c.problems)
    if problems:
        raise PatternError(problems)
    return test


class FilterSet:
    """Compiled FilterCriteria: a record is kept when any pattern matches."""

    __slots__ = ("_tests", "patterns", "reads")

    def __init__(self, patterns: Sequence[str]) -> None:
        self.patterns = tuple(patterns)
        self._tests = tuple(compile_pattern(p) for p in self.patterns)
        self.reads = frozenset(k for p in self.patterns for k in _top_keys(json.loads(p)))

    @classmethod
    def compile(cls, patterns: Sequence[str]) -> FilterSet:
        return cls(patterns)

    def matches(self, view: RecordView) -> bool:
        for t in self._tests:
            if t(view):
                return True
        return False


TEXT: Any = _Sentinel("TEXT")  # parse_data: the data is a string, not JSON


def parse_data(raw: bytes | str) -> tuple[Any, Any]:
    """(parsed JSON, text) of a source's data: JSON objects and arrays parse, anything else is
    plain text (``(TEXT, text)``); data that is not UTF-8 is ``(NO_MATCH, NO_MATCH)``."""
    if isinstance(raw, bytes):
        try:
            raw = raw.decode()
        except UnicodeDecodeError:
            return NO_MATCH, NO_MATCH
    head = raw.lstrip()[:1]
    if head == "{" or head == "[":
        try:
            return json.loads(raw), NO_MATCH
        except ValueError:
            pass
    return TEXT, raw


class ShapedView(Protocol):
    shape: dict[str, bool]

    def get(self, key: str, default: Any = ..., /) -> Any: ...


class ShapedFilters:
    """FilterCriteria for sources whose data keys (SQS ``body``, Kafka ``key``/``value``) match
    as parsed JSON when the pattern's value is an object and as a plain string when it is a rule
    array. Patterns are grouped by the shape they give each data key; before a group runs, the
    view's ``shape`` is set to ``{key: True (object) / False (rules)}`` so that it serves the
    data in the format that group expects (or a sentinel when the record's format differs)."""

    __slots__ = ("_groups", "reads")

    def __init__(self, patterns: Sequence[str], keys: Sequence[str]) -> None:
        groups: dict[tuple[bool | None, ...], list[str]] = {}
        for p in patterns:
            parsed = json.loads(p)
            groups.setdefault(tuple(_shape(parsed, k) for k in keys), []).append(p)
        self._groups = tuple(({k: s for k, s in zip(keys, shape, strict=True) if s is not None},
                              FilterSet(ps)) for shape, ps in groups.items())
        self.reads = frozenset(k for _shape_, fs in self._groups for k in fs.reads)

    def matches(self, view: ShapedView) -> bool:
        for shape, filters in self._groups:
            view.shape = shape
            if filters.matches(view):
                return True
        return False


def _shape(pattern: dict[str, Any], key: str) -> bool | None:
    """True when the pattern matches ``key`` with an object (JSON), False with a rule array
    (text), None when it does not read it (an ``$or`` mixing both counts as an object)."""
    found: bool | None = None
    for k, v in pattern.items():
        if k == "$or":
            for alt in v:
                s = _shape(alt, key)
                if s is not None:
                    found = s or bool(found)
        elif k == key:
            found = type(v) is dict or bool(found)
    return found


def _top_keys(pattern: dict[str, Any]) -> Iterator[str]:
    for key, value in pattern.items():
        if key == "$or":
            for alt in value:
                yield from _top_keys(alt)
        else:
            yield key


def filter_criteria_problems(value: Any, max_filters: int = DEFAULT_MAX_FILTERS,
                             object_keys: frozenset[str] = frozenset()) -> list[tuple[str, str]]:
    """Every reason Lambda would reject this FilterCriteria, as (path inside it, message), e.g.
    ("Filters[2].Pattern", "data.price[0].numeric: ..."). ``object_keys``: top-level keys whose
    pattern value must be an object (a source's JSON data key, e.g. Kinesis ``data``)."""
    if value is None:
        return []
    if type(value) is not dict:
        return [("", 'must be an object {"Filters": [{"Pattern": "<JSON>"}, ...]}')]
    problems = [(k, "unknown field (FilterCriteria has only Filters)")
                for k in value if k != "Filters"]
    filters = value.get("Filters")
    if filters is None:
        return problems
    if type(filters) is not list:
        return [*problems, ("Filters", "must be a list of {Pattern: <JSON string>}")]
    if len(filters) > max_filters:
        hint = (" (raise tuning.max_filters_per_mapping, up to 10, if your AWS quota allows)"
                if max_filters < MAX_FILTERS_LIMIT else "")
        problems.append(("Filters", f"{len(filters)} filters; at most {max_filters} are "
                         "allowed" + hint))
    for i, f in enumerate(filters):
        where = f"Filters[{i}]"
        if type(f) is not dict or set(f) - {"Pattern"}:
            problems.append((where, "must be an object with only a Pattern field"))
            continue
        text = f.get("Pattern")
        path = f"{where}.Pattern"
        if text is None:
            problems.append((path, "is required"))
            continue
        if type(text) is not str:
            problems.append((path, "must be a string holding a JSON object (quote it in YAML: "
                                   "Pattern: '{\"data\": ...}')"))
            continue
        try:
            compile_pattern(text)
        except PatternError as exc:
            problems.extend((path, p) for p in exc.problems)
            continue
        parsed = json.loads(text)
        for key in sorted(object_keys & set(_top_keys(parsed))):
            if not _all_objects(parsed, key):
                problems.append((path, f"{key} must be a JSON object pattern (the record's "
                                       f"{key} is matched as parsed JSON)"))
    return problems


def _all_objects(pattern: dict[str, Any], key: str) -> bool:
    for k, v in pattern.items():
        if k == "$or":
            if not all(_all_objects(alt, key) for alt in v):
                return False
        elif k == key and type(v) is not dict:
            return False
    return True


class MqView:
    """An Amazon MQ message as FilterCriteria see it: the message object exactly as the event
    carries it (``messageID``, ``messageType``, ``basicProperties``, ...; the encoder's
    ``fragment``) and ``data`` base64-decoded, then UTF-8, then JSON for patterns whose ``data``
    is an object and the string for rule arrays. When the format differs (or the bytes are not
    UTF-8) the ``data`` rules are skipped and the metadata rules decide, as Lambda does for MQ."""

    __slots__ = ("_data", "_doc", "_fragment", "shape")

    def __init__(self, fragment: bytes) -> None:
        self._fragment = fragment
        self._doc: dict[str, Any] | None = None
        self._data: tuple[Any, Any] | None = None
        self.shape: dict[str, bool] = {}

    def get(self, key: str, default: Any = None, /) -> Any:
        doc = self._doc
        if doc is None:
            doc = self._doc = json.loads(self._fragment)
        if key != "data":
            return doc.get(key, default)
        data = self._data
        if data is None:
            data = self._data = parse_data(base64.b64decode(doc.get("data") or ""))
        parsed, text = data
        if self.shape.get("data", True):
            return SKIP if parsed is TEXT or parsed is NO_MATCH else parsed
        return SKIP if text is NO_MATCH else text
