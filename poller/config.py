"""Config file (YAML) -> validated :class:`~poller.config_model.Config`.

Mappings use AWS's CreateEventSourceMapping parameter names (PascalCase), defaults and ranges.
Every problem in a file is collected and reported at once in one :class:`ConfigError`.
String values may reference the environment as ``${VAR}``, ``${VAR:-default}`` (default when
unset or empty) or ``${VAR-default}`` (default when unset); ``$${`` writes a literal ``${``.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import re
import time
import urllib.parse
import uuid
from collections.abc import Callable, Collection, Iterable
from collections.abc import Mapping as MappingABC
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Final, Literal, cast

import yaml

from poller.config_model import (
    SERVICES,
    AwsConfig,
    Config,
    KafkaAuth,
    KafkaSource,
    LambdaClient,
    Mapping,
    MetricsConfig,
    MqSource,
    SecretRef,
    ServiceEndpoint,
    StartingPosition,
    StateConfig,
    Target,
    TargetType,
    TuningConfig,
)
from poller.filtering import filter_criteria_problems

__all__ = [
    "MISSING",
    "TUNING_RANGES",
    "ConfigError",
    "ConfigIssue",
    "generated_uuid",
    "load_config",
    "parse_config",
    "summary",
]


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


MISSING: Final = _Missing()
"""``ConfigIssue.value`` when the problem is about an absent or unknown field, not a value."""


@dataclass(frozen=True, slots=True)
class ConfigIssue:
    path: str  # e.g. "mappings[0].BatchSize"; "" for problems with the file itself
    value: object  # the offending value, or MISSING
    message: str  # states the allowed range / values

    def __str__(self) -> str:
        if not self.path:
            return self.message
        if self.value is MISSING:
            return f"{self.path}: {self.message}"
        shown = self.value.isoformat() if isinstance(self.value, date) else repr(self.value)
        return f"{self.path} = {shown}: {self.message}"


class ConfigError(Exception):
    """Every problem found in one config file."""

    def __init__(self, source: str, errors: Iterable[ConfigIssue]) -> None:
        self.source = source
        self.errors: list[ConfigIssue] = list(errors)
        super().__init__(str(self))

    def __str__(self) -> str:
        if len(self.errors) == 1:
            return f"{self.source}: {self.errors[0]}"
        lines = [f"{self.source}: {len(self.errors)} problems:"]
        lines += [f"  {issue}" for issue in self.errors]
        return "\n".join(lines)


# --- AWS shapes (botocore lambda/2015-03-31 model) ---------------------------------------------

_PARTITION = r"aws[a-zA-Z0-9-]*"
_REGION = r"(?:eusc-)?[a-z]{2}(?:(?:-gov)|(?:-iso[a-z]?))?-[a-z]+-\d"
_REGION_RE = re.compile(_REGION)
_ARN_RE = re.compile(rf"arn:({_PARTITION}):([a-zA-Z0-9-]+):({_REGION})?:(\d{{12}})?:(.*)", re.S)
_KINESIS_STREAM_RE = re.compile(r"stream/([a-zA-Z0-9_.-]{1,128})")
_KINESIS_CONSUMER_RE = re.compile(r"stream/[^/]+/consumer/.+")
_MSK_CLUSTER_RE = re.compile(r"cluster/[^/]+/[^/]+")
_KAFKA_TOPIC_RE = re.compile(r"[^.]([a-zA-Z0-9\-_.]+)")
_KAFKA_GROUP_RE = re.compile(r"[ a-zA-Z0-9\-/*:_+=.@]{1,200}")
_KAFKA_SERVER_RE = re.compile(r"[^\s,:]{1,294}:[0-9]{1,5}")
_POLLER_GROUP_RE = re.compile(r"[a-zA-Z0-9_-]{0,128}")
_SECRET_ARN_RE = re.compile(rf"arn:{_PARTITION}:secretsmanager:{_REGION}:\d{{12}}:secret:.+")
_DDB_STREAM_RE = re.compile(r"table/[a-zA-Z0-9_.-]{3,255}/stream/[^/\s]+")
_FUNCTION_RE = re.compile(
    rf"(?:arn:(?P<partition>aws[a-zA-Z-]*)?:lambda:)?(?:(?P<region>{_REGION}):)?"
    r"(?:(?P<account>\d{12}):)?(?P<fn>function:)?(?P<name>[a-zA-Z0-9_.-]+)"
    r"(?::(?P<qualifier>\$LATEST(?:\.PUBLISHED)?|[a-zA-Z0-9_-]+))?"
)
_QUALIFIER_RE = re.compile(r"[a-zA-Z0-9$_-]{1,128}")
_ROLE_ARN_RE = re.compile(r"arn:(aws[a-zA-Z-]*)?:iam::\d{12}:role/?[a-zA-Z_0-9+=,.@\-_/]+")
_KMS_ARN_RE = re.compile(r"arn:(aws[a-zA-Z-]*)?:kms:.+")
_SQS_NAME_RE = re.compile(r"[a-zA-Z0-9_-]{1,80}(\.fifo)?")
_SNS_NAME_RE = re.compile(r"[a-zA-Z0-9_-]{1,256}(\.fifo)?")
_S3_BUCKET_RE = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_TAG_PUNCT = frozenset("_.:/=+-@ ")
_UUID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_HANDLER_RE = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*(?::[A-Za-z_]\w*|\.[A-Za-z_]\w*)")
_HEADER_NAME_RE = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_VAR_RE = re.compile(r"\$(\$?)\{([^{}]*)\}")
_VAR_BODY_RE = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(?:(:?-)(.*))?", re.S)

_STARTING_POSITIONS = ("TRIM_HORIZON", "LATEST", "AT_TIMESTAMP")
_DDB_STARTING_POSITIONS = ("TRIM_HORIZON", "LATEST")
_TARGET_TYPES = ("lambda", "http", "python")
_LOG_LEVELS = ("debug", "info", "warning", "error")
_LOG_FORMATS = ("auto", "json", "console")
_MAX_DESTINATION_ARN = 350
_MAX_TIMEOUT_SECONDS = 3600.0

_MAPPING_FIELDS = (
    "UUID", "EventSourceArn", "FunctionName", "Enabled", "BatchSize",
    "MaximumBatchingWindowInSeconds", "StartingPosition", "StartingPositionTimestamp",
    "MaximumRecordAgeInSeconds", "MaximumRetryAttempts", "BisectBatchOnFunctionError",
    "ParallelizationFactor", "DestinationConfig", "FunctionResponseTypes",
    "TumblingWindowInSeconds", "FilterCriteria", "KMSKeyArn", "MetricsConfig", "Tags", "Target",
    "ScalingConfig",
)
# stream-only parameters AWS rejects for SQS queues
_NOT_FOR_SQS = (
    "StartingPosition", "StartingPositionTimestamp", "DestinationConfig", "MaximumRetryAttempts",
    "MaximumRecordAgeInSeconds", "BisectBatchOnFunctionError", "ParallelizationFactor",
    "TumblingWindowInSeconds",
)
_NOT_FOR_KINESIS = {
    "Queues": "Amazon MQ",
    "Topics": "Kafka",
    "SourceAccessConfigurations": "Kafka and Amazon MQ",
    "SelfManagedEventSource": "self-managed Kafka",
    "AmazonManagedKafkaEventSourceConfig": "Amazon MSK",
    "SelfManagedKafkaEventSourceConfig": "self-managed Kafka",
    "DocumentDBEventSourceConfig": "DocumentDB",
    "ProvisionedPollerConfig": "SQS and Kafka",
    "LoggingConfig": "other event sources",
}
_KAFKA_FIELDS = (
    "Topics", "SourceAccessConfigurations", "SelfManagedEventSource",
    "AmazonManagedKafkaEventSourceConfig", "SelfManagedKafkaEventSourceConfig",
    "ProvisionedPollerConfig", "LoggingConfig",
)
_NOT_FOR_KAFKA = ("ParallelizationFactor", "TumblingWindowInSeconds")
_MAPPING_FIELDS_KAFKA = (
    *(f for f in _MAPPING_FIELDS if f not in _NOT_FOR_KAFKA), *_KAFKA_FIELDS,
)
_KAFKA_AUTH_TYPES = (
    "BASIC_AUTH", "SASL_SCRAM_256_AUTH", "SASL_SCRAM_512_AUTH", "CLIENT_CERTIFICATE_TLS_AUTH",
    "SERVER_ROOT_CA_CERTIFICATE",
)
_KAFKA_ACCESS_TYPES = (*_KAFKA_AUTH_TYPES, "VPC_SUBNET", "VPC_SECURITY_GROUP")
_KAFKA_WINDOW_DEFAULT = 0.5  # MSK and self-managed Kafka: 500 ms until set (whole seconds)
_KAFKA_RETRY_CAP = 10  # -1 with an on-failure destination: Lambda caps retries at 10
_OUTPUT_ONLY = (
    "EventSourceMappingArn", "FunctionArn", "LastModified", "LastProcessingResult", "State",
    "StateTransitionReason", "FilterCriteriaError",
)
_TOP_FIELDS = ("aws", "state", "metrics", "tuning", "log", "msk", "mq", "secrets", "mappings")
_AWS_FIELDS = ("region", "endpoint_url", "access_key_id", "secret_access_key", "session_token")
_SECRET_FIELDS = frozenset({"secret_access_key", "session_token"})
_TARGET_FIELDS: dict[str, tuple[str, ...]] = {
    "Type": _TARGET_TYPES, "RoleArn": _TARGET_TYPES, "TimeoutSeconds": _TARGET_TYPES,
    "Qualifier": ("lambda",), "Url": ("http",), "Headers": ("http",), "Handler": ("python",),
    "KeyParallelism": _TARGET_TYPES, "Client": ("lambda",),
}
_LAMBDA_CLIENTS = ("fast", "aiobotocore")
_UNSUPPORTED_SOURCES = {
    "kafka": "Amazon MSK (Kafka)", "rds": "DocumentDB",
}
_KINESIS_ONLY = (
    "this release supports Kinesis stream ARNs "
    "(arn:aws:kinesis:<region>:<account>:stream/<name>), DynamoDB stream ARNs "
    "(arn:aws:dynamodb:<region>:<account>:table/<table>/stream/<label>) and SQS queue ARNs "
    "(arn:aws:sqs:<region>:<account>:<queue>)"
)
SQS_MAX_BATCH_WITHOUT_WINDOW = 10
SQS_FIFO_MAX_BATCH = 10

TUNING_RANGES: Final[dict[str, tuple[float, float]]] = {
    "shard_discovery_seconds": (1.0, 3600.0),
    "idle_poll_seconds": (0.01, 60.0),
    "min_poll_interval_seconds": (0.0, 60.0),
    "retry_base_seconds": (0.001, 3600.0),
    "retry_max_seconds": (0.001, 3600.0),
    "throttle_base_seconds": (0.001, 3600.0),
    "throttle_max_seconds": (0.001, 3600.0),
    "checkpoint_flush_seconds": (0.0, 60.0),
    "drain_grace_seconds": (0.0, 3600.0),
    "destination_attempts": (1, 100),
    "max_filters_per_mapping": (5, 10),
    "kafka_session_timeout_seconds": (1.0, 300.0),
    "ddb_poll_interval_seconds": (0.01, 60.0),
    "sqs_wait_time_seconds": (0, 20),
    "sqs_max_pollers": (1, 10000),
}
"""Inclusive (min, max) for every TuningConfig field."""

_DEFAULT_AWS: Final = AwsConfig()
_DEFAULT_STATE: Final = StateConfig()
_TABLE_NAME_RE: Final = re.compile(r"[A-Za-z0-9_.-]{3,255}")
_DEFAULT_METRICS: Final = MetricsConfig()
_DEFAULT_TARGET: Final = Target()

_UUID_NAMESPACE: Final = uuid.UUID("6f1c5a0e-3b8e-5d2c-9a47-0e5b6c7d8e9f")


def generated_uuid(event_source_arn: str, function_name: str) -> str:
    """The UUID a mapping gets when the file gives none: stable across restarts and hosts."""
    return str(uuid.uuid5(_UUID_NAMESPACE, f"{event_source_arn}\n{function_name}"))


# --- environment references ----------------------------------------------------------------------


class _EnvStr(str):
    """A string produced by ${VAR} expansion: numeric and boolean fields may parse it."""

    __slots__ = ()


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _expand(data: object, path: str, env: MappingABC[str, str], issues: list[ConfigIssue],
            order: dict[str, int]) -> object:
    """A copy of ``data`` with references expanded; ``order`` gets every path in file order."""
    order.setdefault(path, len(order))
    if isinstance(data, str):
        return _expand_str(data, path, env, issues)
    if isinstance(data, dict):
        return {k: _expand(v, _join(path, str(k)), env, issues, order) for k, v in data.items()}
    if isinstance(data, list):
        return [_expand(v, f"{path}[{i}]", env, issues, order) for i, v in enumerate(data)]
    return data


_LAST_PATH_PART = re.compile(r"(?:\.[^.\[\]]*|\[\d+\])$")


def _in_file_order(issues: list[ConfigIssue], order: dict[str, int]) -> list[ConfigIssue]:
    """Sort problems by where they are in the file (absent fields: at their parent)."""

    def position(issue: ConfigIssue) -> int:
        path = issue.path
        while path:
            if path in order:
                return order[path]
            shorter = _LAST_PATH_PART.sub("", path)
            path = shorter if shorter != path else ""
        return len(order)

    return sorted(issues, key=position)


def _expand_str(text: str, path: str, env: MappingABC[str, str],
                issues: list[ConfigIssue]) -> str:
    if "${" not in text:
        return text
    expanded = False

    def repl(m: re.Match[str]) -> str:
        nonlocal expanded
        escaped, body = m.group(1), m.group(2)
        if escaped:
            return "${" + body + "}"
        ref = _VAR_BODY_RE.fullmatch(body)
        if ref is None:
            issues.append(ConfigIssue(path, MISSING, f"invalid environment reference ${{{body}}} "
                                      "(expected ${VAR}, ${VAR:-default} or ${VAR-default})"))
            return m.group(0)
        name, op, default = ref.group(1), ref.group(2), ref.group(3)
        expanded = True
        value = env.get(name)
        if op == ":-" and not value:
            return default or ""
        if op == "-" and value is None:
            return default or ""
        if value is None:
            issues.append(ConfigIssue(path, MISSING, f"environment variable {name} is not set "
                                      f"(set it, or give a default: ${{{name}:-default}})"))
            return ""
        return value

    result = _VAR_RE.sub(repl, text)
    return _EnvStr(result) if expanded else result


# --- YAML loading --------------------------------------------------------------------------------


class _Loader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys instead of silently keeping the last one."""


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[object] = set()
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node, deep=True)
        try:
            duplicate = key in seen
            seen.add(key)
        except TypeError:
            continue  # unhashable: construct_mapping reports it
        if duplicate:
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping", node.start_mark,
                f"found duplicate key {key!r}", key_node.start_mark)
    return loader.construct_mapping(node, deep=True)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _yaml_problem(exc: yaml.YAMLError) -> str:
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        problem = exc.problem or "syntax error"
        return f"invalid YAML at line {mark.line + 1}, column {mark.column + 1}: {problem}"
    return f"invalid YAML: {exc}"


def load_config(path: str | os.PathLike[str], env: MappingABC[str, str] | None = None) -> Config:
    """Read, expand and validate a config file; raises ConfigError listing every problem."""
    source = os.fspath(path)
    try:
        with open(source, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        raise ConfigError(source, [ConfigIssue("", MISSING, "file not found")]) from None
    except UnicodeDecodeError:
        raise ConfigError(source, [ConfigIssue("", MISSING, "not UTF-8 text")]) from None
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise ConfigError(source, [ConfigIssue("", MISSING, f"cannot read: {reason}")]) from None
    try:
        data = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        raise ConfigError(source, [ConfigIssue("", MISSING, _yaml_problem(exc))]) from None
    return parse_config(data, source, env)


# --- validation ----------------------------------------------------------------------------------


def _suggest(key: str, candidates: Collection[str]) -> str | None:
    def norm(s: str) -> str:
        return s.lower().replace("_", "").replace("-", "")

    by_norm = {norm(c): c for c in candidates}
    if norm(key) in by_norm:
        return by_norm[norm(key)]
    close = difflib.get_close_matches(norm(key), list(by_norm), n=1, cutoff=0.6)
    return by_norm[close[0]] if close else None


def _did_you_mean(key: str, candidates: Collection[str]) -> str:
    best = _suggest(key, candidates)
    return f" (did you mean {best}?)" if best else ""


def _type_name(value: object) -> str:
    """'a string', 'an integer', ... for messages."""
    if value is None:
        return "null"
    if isinstance(value, _EnvStr):
        return "a string from the environment"
    names: list[tuple[type | tuple[type, ...], str]] = [
        (bool, "a boolean"), (int, "an integer"), (float, "a number"), (str, "a string"),
        ((datetime, date), "a date"), (list, "a list"), (dict, "a mapping"),
    ]
    for types, name in names:
        if isinstance(value, types):
            return name
    return f"a {type(value).__name__}"


def _fmt(n: float) -> str:
    return f"{n:g}"


class _Checker:
    def __init__(self, issues: list[ConfigIssue]) -> None:
        self.issues = issues
        # paths whose ${VAR} reference failed: their value is not worth a second complaint
        self.env_failed = {issue.path for issue in issues}

    def add(self, path: str, value: object, message: str) -> None:
        if path in self.env_failed:
            return
        if isinstance(value, _EnvStr):
            value = str(value)
        self.issues.append(ConfigIssue(path, value, message))

    def obj(self, path: str, value: object, allowed: Collection[str], *,
            what: str = "field", extra_candidates: Collection[str] = (),
            hint: Callable[[str], str | None] | None = None) -> dict[str, object]:
        """The known keys of a mapping; reports a non-mapping, non-string keys, unknown keys."""
        if value is None or value is MISSING:
            return {}
        if not isinstance(value, dict):
            self.add(path, value, f"must be a mapping (got {_type_name(value)})")
            return {}
        known: dict[str, object] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                self.add(_join(path, str(key)), MISSING,
                         f"keys must be strings (got {_type_name(key)} key)")
                continue
            if key in allowed:
                known[key] = item
                continue
            special = hint(key) if hint else None
            if special:
                self.add(_join(path, key), MISSING, special)
            else:
                candidates = [*allowed, *extra_candidates]
                self.add(_join(path, key), MISSING,
                         f"unknown {what}{_did_you_mean(key, candidates)}")
        return known

    def bool_(self, path: str, value: object, default: bool) -> bool:
        if value is None or value is MISSING:
            return default
        if isinstance(value, bool):
            return value
        if isinstance(value, _EnvStr) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        self.add(path, value, f"must be true or false (got {_type_name(value)})")
        return default

    def int_(self, path: str, value: object, default: int, lo: int, hi: int,
             message: str | None = None, ok: Callable[[int], bool] | None = None) -> int:
        message = message or f"must be an integer from {lo} to {hi}"
        if value is None or value is MISSING:
            return default
        n: int | None = None
        if isinstance(value, int) and not isinstance(value, bool):
            n = value
        elif isinstance(value, _EnvStr):
            try:
                n = int(value.strip())
            except ValueError:
                n = None
        if n is None:
            self.add(path, value, f"{message} (got {_type_name(value)})")
            return default
        if not (lo <= n <= hi) or (ok is not None and not ok(n)):
            self.add(path, value, message)
            return default
        return n

    def num(self, path: str, value: object, default: float, lo: float, hi: float,
            lo_exclusive: bool = False) -> float:
        low = f"greater than {_fmt(lo)}" if lo_exclusive else f"from {_fmt(lo)}"
        message = f"must be a number {low} {'and at most' if lo_exclusive else 'to'} {_fmt(hi)}"
        if value is None or value is MISSING:
            return default
        x: float | None = None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            x = float(value)
        elif isinstance(value, _EnvStr):
            try:
                x = float(value.strip())
            except ValueError:
                x = None
        if x is None:
            self.add(path, value, f"{message} (got {_type_name(value)})")
            return default
        too_low = x <= lo if lo_exclusive else x < lo
        if math.isnan(x) or too_low or x > hi:
            self.add(path, value, message)
            return default
        return x

    def str_(self, path: str, value: object, default: str | None = None, *,
             required: bool = False, secret: bool = False, max_len: int | None = None,
             pattern: re.Pattern[str] | None = None, expected: str = "") -> str | None:
        """A string (None/missing -> default, or an error if required)."""
        shown = "***" if secret else value
        if value is None or value is MISSING:
            if required:
                self.add(path, MISSING, f"is required{': ' + expected if expected else ''}")
            return default
        if not isinstance(value, str):
            hint = "; quote it" if isinstance(value, (int, float, bool, date)) else ""
            need = expected or "a string"
            self.add(path, shown, f"must be {need} (got {_type_name(value)}{hint})")
            return default
        text = str(value)
        if required and not text:
            self.add(path, shown, f"must not be empty{': ' + expected if expected else ''}")
            return default
        if max_len is not None and len(text) > max_len:
            self.add(path, shown, f"must be at most {max_len} characters (got {len(text)})")
            return default
        if pattern is not None and text and pattern.fullmatch(text) is None:
            self.add(path, shown, f"must be {expected}" if expected else "has an invalid format")
            return default
        return text

    def choice(self, path: str, value: object, choices: tuple[str, ...], default: str | None,
               *, required: bool = False, ignore_case: bool = False,
               expected: str = "") -> str | None:
        allowed = "one of " + ", ".join(choices)
        if value is None or value is MISSING:
            if required:
                self.add(path, MISSING, f"is required{expected}: {allowed}")
            return default
        if isinstance(value, str):
            text = value.lower() if ignore_case else str(value)
            if text in choices:
                return text
            self.add(path, value, f"must be {allowed}{_did_you_mean(value, choices)}")
        else:
            self.add(path, value, f"must be {allowed} (got {_type_name(value)})")
        return default

    def str_map(self, path: str, value: object, *, secret: bool = False) -> dict[str, str]:
        if value is None or value is MISSING:
            return {}
        if not isinstance(value, dict):
            self.add(path, value, f"must be a mapping of strings (got {_type_name(value)})")
            return {}
        out: dict[str, str] = {}
        for k, v in value.items():
            if not isinstance(k, str):
                self.add(_join(path, str(k)), MISSING,
                         f"keys must be strings (got {_type_name(k)} key)")
                continue
            s = self.str_(_join(path, k), v, secret=secret)
            if s is not None:
                out[k] = s
        return out


def _url(c: _Checker, path: str, value: object, *, required: bool = False) -> str | None:
    text = c.str_(path, value, required=required, expected="an http:// or https:// URL")
    if not text:
        return None
    parsed = urllib.parse.urlsplit(text)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        c.add(path, value, "must be an http:// or https:// URL with a host")
        return None
    return text


def _service_endpoint(c: _Checker, path: str, value: object) -> ServiceEndpoint:
    d = c.obj(path, value, ("endpoint_url", "region"))
    return ServiceEndpoint(
        endpoint_url=_url(c, _join(path, "endpoint_url"), d.get("endpoint_url", MISSING)),
        region=_region(c, _join(path, "region"), d.get("region", MISSING)),
    )


def _region(c: _Checker, path: str, value: object) -> str | None:
    return c.str_(path, value, pattern=_REGION_RE, expected="an AWS region name like us-east-1")


def _aws(c: _Checker, value: object) -> AwsConfig:
    d = c.obj("aws", value, (*_AWS_FIELDS, *SERVICES))
    services = {
        name: _service_endpoint(c, _join("aws", name), d[name])
        for name in SERVICES if d.get(name) is not None
    }
    creds = {
        k: c.str_(_join("aws", k), d.get(k, MISSING), secret=k in _SECRET_FIELDS) or None
        for k in ("access_key_id", "secret_access_key", "session_token")
    }
    present = {k: d.get(k) not in (None, "") for k in creds}
    if present["access_key_id"] != present["secret_access_key"]:
        given, other = (("access_key_id", "secret_access_key") if present["access_key_id"]
                        else ("secret_access_key", "access_key_id"))
        c.add(_join("aws", other), MISSING, f"is required when aws.{given} is set "
              "(give both, or neither to use the standard credential chain)")
    if present["session_token"] and not present["access_key_id"]:
        c.add("aws.session_token", MISSING,
              "needs aws.access_key_id and aws.secret_access_key")
    return AwsConfig(
        region=_region(c, "aws.region", d.get("region", MISSING)) or _DEFAULT_AWS.region,
        endpoint_url=_url(c, "aws.endpoint_url", d.get("endpoint_url", MISSING)),
        services=services,
        access_key_id=creds["access_key_id"],
        secret_access_key=creds["secret_access_key"],
        session_token=creds["session_token"],
    )


def _state(c: _Checker, value: object) -> StateConfig:
    fields = ("store", "path", "table", "billing_mode", "read_capacity", "write_capacity",
              "failover_seconds", "handoff_grace_seconds", "endpoint_url", "watchdog_seconds")
    d = c.obj("state", value, fields)
    store = c.choice("state.store", d.get("store", MISSING), ("sqlite", "dynamodb"), "sqlite")
    path = c.str_("state.path", d.get("path", MISSING), _DEFAULT_STATE.path,
                  expected="a file path")
    if path == "":
        c.add("state.path", path, "must not be empty: a file path for the sqlite database")
    watchdog = c.num("state.watchdog_seconds", d.get("watchdog_seconds", MISSING),
                     _DEFAULT_STATE.watchdog_seconds, 0, 86400)
    if store != "dynamodb":
        for name in fields[2:-1]:
            if d.get(name) is not None:
                c.add(_join("state", name), d[name], "applies only with state.store: dynamodb")
        return StateConfig(store="sqlite", path=path or _DEFAULT_STATE.path,
                           watchdog_seconds=watchdog)
    table = c.str_("state.table", d.get("table", MISSING), _DEFAULT_STATE.table,
                   pattern=_TABLE_NAME_RE,
                   expected="a DynamoDB table name: 3 to 255 of a-z A-Z 0-9 _ - .")
    billing = c.choice("state.billing_mode", d.get("billing_mode", MISSING),
                       ("PAY_PER_REQUEST", "PROVISIONED"), _DEFAULT_STATE.billing_mode)
    capacity = {name: c.int_(_join("state", name), d.get(name, MISSING),
                             getattr(_DEFAULT_STATE, name), 1, 40000)
                for name in ("read_capacity", "write_capacity")}
    if billing != "PROVISIONED":
        for name in capacity:
            if d.get(name) is not None:
                c.add(_join("state", name), d[name], "applies only with state.billing_mode: "
                      "PROVISIONED")
    failover = c.num("state.failover_seconds", d.get("failover_seconds", MISSING),
                     _DEFAULT_STATE.failover_seconds, 1, 600)
    grace = c.num("state.handoff_grace_seconds", d.get("handoff_grace_seconds", MISSING),
                  _DEFAULT_STATE.handoff_grace_seconds, 0, 900)
    endpoint = _url(c, "state.endpoint_url", d.get("endpoint_url", MISSING))
    return StateConfig(
        store="dynamodb", path=path or _DEFAULT_STATE.path, table=table or _DEFAULT_STATE.table,
        billing_mode=cast(Literal["PAY_PER_REQUEST", "PROVISIONED"],
                          billing or _DEFAULT_STATE.billing_mode),
        read_capacity=capacity["read_capacity"], write_capacity=capacity["write_capacity"],
        failover_seconds=failover, handoff_grace_seconds=grace, endpoint_url=endpoint,
        watchdog_seconds=watchdog)


def _metrics(c: _Checker, value: object) -> MetricsConfig:
    d = c.obj("metrics", value, ("port", "host"))
    port = c.int_("metrics.port", d.get("port", MISSING), _DEFAULT_METRICS.port, 0, 65535,
                  "must be an integer from 0 to 65535 (0 disables the metrics endpoint)")
    host = c.str_("metrics.host", d.get("host", MISSING), _DEFAULT_METRICS.host,
                  expected="a host name or IP address")
    if host == "":
        c.add("metrics.host", host, "must not be empty: a host name or IP address")
    return MetricsConfig(port=port, host=host or _DEFAULT_METRICS.host)


def _tuning(c: _Checker, value: object) -> TuningConfig:
    names = [f.name for f in dataclasses.fields(TuningConfig)]
    d = c.obj("tuning", value, names)
    defaults = TuningConfig()
    kwargs: dict[str, float | int] = {}
    for name in names:
        default = getattr(defaults, name)
        lo, hi = TUNING_RANGES.get(name, (0.0, math.inf))
        path = _join("tuning", name)
        if isinstance(default, int):
            kwargs[name] = c.int_(path, d.get(name, MISSING), default, int(lo), int(hi))
        else:
            kwargs[name] = c.num(path, d.get(name, MISSING), default, lo, hi)
    tuning = TuningConfig(**kwargs)  # type: ignore[arg-type]
    for base, top in (("retry_base_seconds", "retry_max_seconds"),
                      ("throttle_base_seconds", "throttle_max_seconds")):
        if getattr(tuning, top) < getattr(tuning, base):
            c.add(_join("tuning", top), getattr(tuning, top),
                  f"must be at least tuning.{base} ({_fmt(getattr(tuning, base))})")
    return tuning


def _log(c: _Checker, value: object) -> tuple[str, str]:
    d = c.obj("log", value, ("level", "format"))
    level = c.choice("log.level", d.get("level", MISSING), _LOG_LEVELS, "info", ignore_case=True)
    fmt = c.choice("log.format", d.get("format", MISSING), _LOG_FORMATS, "auto", ignore_case=True)
    return level or "info", fmt or "auto"


# --- one mapping ---------------------------------------------------------------------------------


def _mapping_key_hint(key: str) -> str | None:
    if key in _NOT_FOR_KINESIS:
        return (f"does not apply to Kinesis, DynamoDB Streams or SQS event sources (it is for "
                f"{_NOT_FOR_KINESIS[key]}); remove it")
    if key in _OUTPUT_ONLY:
        extra = "; use FunctionName" if key == "FunctionArn" else ""
        return (f"is an output of GetEventSourceMapping, not a CreateEventSourceMapping "
                f"parameter; remove it{extra}")
    return None


def _event_source_arn(c: _Checker, path: str, value: object) -> str | None:
    arn = c.str_(path, value, required=True,
                 expected="a Kinesis stream, DynamoDB stream or SQS queue ARN")
    if not arn:
        return None
    m = _ARN_RE.fullmatch(arn)
    if m is None:
        c.add(path, value, f"is not a valid ARN; {_KINESIS_ONLY}")
        return None
    service, region, account, resource = m.group(2), m.group(3), m.group(4), m.group(5)
    if service == "kinesis":
        if _KINESIS_CONSUMER_RE.fullmatch(resource):
            c.add(path, value, "Kinesis stream consumer (enhanced fan-out) ARNs are not "
                  f"supported yet by esm-poller; use the stream ARN ({_KINESIS_ONLY})")
            return None
        if _KINESIS_STREAM_RE.fullmatch(resource) is None or not region or not account:
            c.add(path, value, "must be a Kinesis stream ARN "
                  "arn:aws:kinesis:<region>:<12-digit account>:stream/<name> "
                  "(name: 1 to 128 of a-z A-Z 0-9 _ . -)")
            return None
        return arn
    if service == "dynamodb":
        if _DDB_STREAM_RE.fullmatch(resource) is None or not region or not account:
            c.add(path, value, "must be a DynamoDB stream ARN "
                  "arn:aws:dynamodb:<region>:<12-digit account>:table/<table>/stream/<label> "
                  "(a table ARN has no stream: enable the table's stream and use its ARN)")
            return None
        return arn
    if service == "sqs":
        if _SQS_NAME_RE.fullmatch(resource) is None or not region or not account:
            c.add(path, value, "must be an SQS queue ARN "
                  "arn:aws:sqs:<region>:<12-digit account>:<queue name> "
                  "(1 to 80 of a-z A-Z 0-9 _ -, optionally ending in .fifo)")
            return None
        return arn
    if service in _UNSUPPORTED_SOURCES:
        c.add(path, value, f"{_UNSUPPORTED_SOURCES[service]} event sources are not supported "
              f"yet by esm-poller; {_KINESIS_ONLY}")
    else:
        c.add(path, value, f"{service} is not an event source Lambda supports; {_KINESIS_ONLY}")
    return None


def _is_kafka(value: dict[Any, Any]) -> bool:
    """A Kafka mapping: an MSK cluster ARN, or a (non-empty) SelfManagedEventSource."""
    arn = value.get("EventSourceArn")
    if isinstance(arn, str) and arn.split(":")[2:3] == ["kafka"]:
        return True
    source = value.get("SelfManagedEventSource")
    return isinstance(source, dict) and bool(source) and not arn


def _kafka_key_hint(key: str) -> str | None:
    if key in _NOT_FOR_KAFKA:
        return ("does not apply to Kafka event sources (Lambda reads each partition in order, "
                "one batch at a time); remove it")
    if key in _NOT_FOR_KINESIS and key not in _KAFKA_FIELDS:
        return (f"does not apply to Kafka event sources (it is for "
                f"{_NOT_FOR_KINESIS[key]}); remove it")
    return _mapping_key_hint(key)


def _secrets(c: _Checker, value: object) -> dict[str, SecretRef]:
    """``secrets: {<secret ARN>: {file: PATH} | {env: NAME}}``: where each secret's JSON is."""
    if value is None or value is MISSING:
        return {}
    if not isinstance(value, dict):
        c.add("secrets", value, "must map secret ARNs to {file: PATH} or {env: NAME} "
              f"(got {_type_name(value)})")
        return {}
    out: dict[str, SecretRef] = {}
    for uri, where in value.items():
        path = _join("secrets", str(uri))
        d = c.obj(path, where, ("file", "env"))
        if len(d) != 1:
            c.add(path, MISSING, "must be {file: PATH} or {env: NAME} (exactly one)")
            continue
        [(kind, name)] = d.items()
        text = c.str_(_join(path, kind), name, required=True,
                      expected="a file path" if kind == "file" else "a variable name")
        if text:
            out[str(uri)] = SecretRef(cast(Literal["file", "env"], kind), text)
    return out


def _arn_endpoints(c: _Checker, section: str, key: str, value: object, *, service: str,
                   resource_re: re.Pattern[str], what: str, arn_form: str,
                   endpoints: Callable[[str, object], tuple[str, ...]]
                   ) -> dict[str, tuple[str, ...]]:
    """``<section>: {<key>: {<ARN>: ...}}``: each well-formed ARN and what ``endpoints`` reads."""
    d = c.obj(section, value, (key,))
    raw = d.get(key)
    if raw is None:
        return {}
    where = f"{section}.{key}"
    if not isinstance(raw, dict):
        c.add(where, raw, f"must map {what} (got {_type_name(raw)})")
        return {}
    out: dict[str, tuple[str, ...]] = {}
    for arn, listed in raw.items():
        path = _join(where, str(arn))
        m = _ARN_RE.fullmatch(str(arn))
        if m is None or m.group(2) != service or resource_re.fullmatch(m.group(5)) is None:
            c.add(path, MISSING, f"keys must be {arn_form}")
            continue
        found = endpoints(path, listed)
        if found:
            out[str(arn)] = found
    return out


def _msk(c: _Checker, value: object) -> dict[str, tuple[str, ...]]:
    """``msk: {clusters: {<cluster ARN>: "h:p,h:p" | [h:p, ...]}}``: each cluster's servers."""
    def servers(path: str, listed: object) -> tuple[str, ...]:
        if isinstance(listed, str):
            listed = [s.strip() for s in listed.split(",")]
        return _bootstrap_servers(c, path, listed)

    return _arn_endpoints(c, "msk", "clusters", value, service="kafka",
                          resource_re=_MSK_CLUSTER_RE,
                          what="MSK cluster ARNs to their bootstrap servers",
                          arn_form="MSK cluster ARNs "
                          "(arn:aws:kafka:<region>:<account>:cluster/<name>/<uuid>)",
                          endpoints=servers)


def _bootstrap_servers(c: _Checker, path: str, value: object) -> tuple[str, ...]:
    expected = "a list of 1 to 10 host:port strings"
    if not isinstance(value, list) or not 1 <= len(value) <= 10:
        c.add(path, value, f"must be {expected}")
        return ()
    out = []
    for i, item in enumerate(value):
        server = c.str_(f"{path}[{i}]", item, required=True, pattern=_KAFKA_SERVER_RE,
                        expected="host:port (1 to 300 characters)")
        if server:
            out.append(server)
    return tuple(out) if len(out) == len(value) else ()


def _one_name(c: _Checker, path: str, value: object, source: str, noun: str,
              **rules: Any) -> str | None:
    """``Topics`` / ``Queues``: a list with exactly one name (AWS takes one per mapping)."""
    if value is MISSING or value is None:
        c.add(path, MISSING, f"is required for {source}: a list with exactly 1 {noun}")
    elif not isinstance(value, list) or len(value) != 1:
        c.add(path, value, f"must be a list with exactly 1 {noun}")
    else:
        return c.str_(f"{path}[0]", value[0], required=True, **rules)
    return None


def _kafka_source(c: _Checker, path: str, d: dict[str, object],
                  msk: dict[str, tuple[str, ...]], region: str,
                  secrets: dict[str, SecretRef]) -> tuple[str, KafkaSource] | None:
    """(event source ARN or "" for self-managed, the source) of a Kafka mapping."""

    def p(key: str) -> str:
        return _join(path, key)

    arn_value = d.get("EventSourceArn", MISSING)
    self_managed = d.get("SelfManagedEventSource")
    managed = self_managed is None
    ok = True
    arn = ""
    servers: tuple[str, ...] = ()
    if managed:
        arn = c.str_(p("EventSourceArn"), arn_value, required=True,
                     expected="an MSK cluster ARN or a SelfManagedEventSource") or ""
        m = _ARN_RE.fullmatch(arn) if arn else None
        if arn and (m is None or not m.group(3) or not m.group(4)
                    or _MSK_CLUSTER_RE.fullmatch(m.group(5)) is None):
            c.add(p("EventSourceArn"), arn, "must be an MSK cluster ARN "
                  "arn:aws:kafka:<region>:<12-digit account>:cluster/<name>/<uuid>")
            ok = False
        elif arn:
            servers = msk.get(arn, ())
            if not servers:
                c.add(p("EventSourceArn"), arn, "esm-poller needs this cluster's bootstrap "
                      "servers: add them under msk.clusters (msk: {clusters: {<ARN>: "
                      '"host:port,host:port"}})')
                ok = False
        else:
            ok = False
    else:
        if arn_value not in (MISSING, None, ""):
            c.add(p("EventSourceArn"), arn_value, "must not be set with "
                  "SelfManagedEventSource (self-managed Kafka has no event source ARN)")
            ok = False
        sd = c.obj(p("SelfManagedEventSource"), self_managed, ("Endpoints",))
        ed = c.obj(p("SelfManagedEventSource.Endpoints"), sd.get("Endpoints"),
                   ("KAFKA_BOOTSTRAP_SERVERS",))
        spath = p("SelfManagedEventSource.Endpoints.KAFKA_BOOTSTRAP_SERVERS")
        raw_servers = ed.get("KAFKA_BOOTSTRAP_SERVERS", MISSING)
        if raw_servers is MISSING or raw_servers is None:
            c.add(spath, MISSING, "is required: a list of 1 to 10 host:port strings")
        else:
            servers = _bootstrap_servers(c, spath, raw_servers)
        ok = ok and bool(servers)

    topic = _one_name(c, p("Topics"), d.get("Topics", MISSING), "Kafka", "topic name",
                      max_len=249, pattern=_KAFKA_TOPIC_RE,
                      expected="a topic name: 2 to 249 of a-z A-Z 0-9 . _ - (AWS's pattern), "
                               "not starting with .")

    own, other = (("AmazonManagedKafkaEventSourceConfig", "SelfManagedKafkaEventSourceConfig")
                  if managed else
                  ("SelfManagedKafkaEventSourceConfig", "AmazonManagedKafkaEventSourceConfig"))
    if d.get(other) is not None:
        kind = "self-managed Kafka (SelfManagedEventSource)" if not managed else "Amazon MSK"
        c.add(p(other), MISSING, f"does not apply to this mapping's source ({kind}); "
              f"use {own}")
    gd = c.obj(p(own), d.get(own), ("ConsumerGroupId", "SchemaRegistryConfig"))
    if gd.get("SchemaRegistryConfig") is not None:
        c.add(_join(p(own), "SchemaRegistryConfig"), MISSING,
              "schema registries are not supported yet by esm-poller; remove it")
    group = c.str_(_join(p(own), "ConsumerGroupId"), gd.get("ConsumerGroupId", MISSING),
                   pattern=_KAFKA_GROUP_RE,
                   expected="1 to 200 of a-z A-Z 0-9 space - / * : _ + = . @")

    access: list[tuple[str, str]] = []
    auth: list[KafkaAuth] = []
    raw_access = d.get("SourceAccessConfigurations")
    apath = p("SourceAccessConfigurations")
    if raw_access is not None:
        if not isinstance(raw_access, list) or len(raw_access) > 22:
            c.add(apath, raw_access, "must be a list of at most 22 {Type, URI} items")
        else:
            for i, item in enumerate(raw_access):
                ipath = f"{apath}[{i}]"
                item_d = c.obj(ipath, item, ("Type", "URI"))
                access_type = c.choice(_join(ipath, "Type"), item_d.get("Type", MISSING),
                                _KAFKA_ACCESS_TYPES, None, required=True)
                uri = c.str_(_join(ipath, "URI"), item_d.get("URI", MISSING), required=True,
                             max_len=200, expected="1 to 200 characters")
                if access_type in _KAFKA_AUTH_TYPES and uri:
                    if managed and access_type in ("BASIC_AUTH", "SASL_SCRAM_256_AUTH"):
                        c.add(_join(ipath, "Type"), access_type, "Amazon MSK supports "
                              "SASL_SCRAM_512_AUTH and CLIENT_CERTIFICATE_TLS_AUTH; "
                              f"{access_type} is for self-managed Kafka")
                    elif uri in secrets:
                        auth.append(KafkaAuth(access_type, uri, secrets[uri]))
                    elif _SECRET_ARN_RE.fullmatch(uri):
                        auth.append(KafkaAuth(access_type, uri,
                                              SecretRef("secretsmanager", uri)))
                    else:
                        c.add(_join(ipath, "URI"), uri, "must be a Secrets Manager secret ARN "
                              "(read with GetSecretValue), or be listed under secrets with "
                              "the file or environment variable holding its JSON "
                              "(secrets: {<URI>: {file: PATH}} or {<URI>: {env: NAME}})")
                elif access_type and uri:
                    access.append((access_type, uri))
            client_auth = [a.type for a in auth if a.type != "SERVER_ROOT_CA_CERTIFICATE"]
            if len(client_auth) > 1 or len(auth) - len(client_auth) > 1:
                c.add(apath, MISSING, "may hold at most one of BASIC_AUTH, "
                      "SASL_SCRAM_256_AUTH, SASL_SCRAM_512_AUTH, CLIENT_CERTIFICATE_TLS_AUTH "
                      "and at most one SERVER_ROOT_CA_CERTIFICATE")

    pd = c.obj(p("ProvisionedPollerConfig"), d.get("ProvisionedPollerConfig"),
               ("MinimumPollers", "MaximumPollers", "PollerGroupName"))
    low = c.int_(_join(p("ProvisionedPollerConfig"), "MinimumPollers"),
                 pd.get("MinimumPollers", MISSING), 1, 1, 200)
    high = c.int_(_join(p("ProvisionedPollerConfig"), "MaximumPollers"),
                  pd.get("MaximumPollers", MISSING), 200, 1, 2000)
    if high < low:
        c.add(_join(p("ProvisionedPollerConfig"), "MaximumPollers"), high,
              f"must be at least MinimumPollers ({low})")
    c.str_(_join(p("ProvisionedPollerConfig"), "PollerGroupName"),
           pd.get("PollerGroupName", MISSING), pattern=_POLLER_GROUP_RE,
           expected="0 to 128 of a-z A-Z 0-9 _ -")
    ld = c.obj(p("LoggingConfig"), d.get("LoggingConfig"), ("SystemLogLevel",))
    c.choice(_join(p("LoggingConfig"), "SystemLogLevel"), ld.get("SystemLogLevel", MISSING),
             ("DEBUG", "INFO", "WARN"), None)

    if not ok or topic is None:
        return None
    return arn, KafkaSource(topic=topic, bootstrap_servers=servers,
                            consumer_group_id=group or "", managed=managed,
                            region=(arn.split(":")[3] if arn else region),
                            access=tuple(access), auth=tuple(auth))


def _function_name(c: _Checker, path: str, value: object, source_arn: str | None) -> str | None:
    expected = ("a function name (up to 64 characters), a partial ARN, or a function ARN, "
                "optionally with :version or :alias, 1 to 256 characters")
    name = c.str_(path, value, required=True, expected=expected)
    if not name:
        return None
    m = _FUNCTION_RE.fullmatch(name)
    if len(name) > 256 or m is None or len(m.group("name")) > 64:
        c.add(path, value, f"must be {expected}")
        return None
    if name.startswith("arn:") or source_arn is None:
        return name
    if not (m.group("account") or m.group("fn") or m.group("region")):
        return name  # bare name, optionally :qualifier
    # partial ARN: resolve in the event source's region/account, as AWS does for its own region
    _, partition, _, src_region, src_account, _ = source_arn.split(":", 5)
    full = (f"arn:{partition}:lambda:{m.group('region') or src_region}:"
            f"{m.group('account') or src_account}:function:{m.group('name')}")
    if m.group("qualifier"):
        full += f":{m.group('qualifier')}"
    return full


def _starting_timestamp(c: _Checker, path: str, value: object) -> float | None:
    expected = "epoch seconds (a number) or an ISO-8601 date-time"
    ts: float | None = None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        ts = float(value)
    elif isinstance(value, datetime):
        ts = (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
    elif isinstance(value, date):
        ts = datetime(value.year, value.month, value.day, tzinfo=UTC).timestamp()
    elif isinstance(value, str):
        text = value.strip()
        try:
            ts = float(text)
        except ValueError:
            try:
                dt = datetime.fromisoformat(text)
            except ValueError:
                c.add(path, value, f"must be {expected}")
                return None
            ts = (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).timestamp()
    else:
        c.add(path, value, f"must be {expected} (got {_type_name(value)})")
        return None
    if not math.isfinite(ts) or ts < 0:
        c.add(path, value, f"must be {expected} at or after 1970-01-01T00:00:00Z")
        return None
    now = time.time()
    if ts > now:
        when = datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")
        c.add(path, value, f"must not be in the future (it is {when})")
        return None
    return ts


def _destination(c: _Checker, path: str, value: object, kafka: bool = False) -> str | None:
    d = c.obj(path, value, ("OnFailure", "OnSuccess"))
    on_success = d.get("OnSuccess")
    if on_success is not None:
        c.add(_join(path, "OnSuccess"), MISSING, "is not supported for event source mappings "
              "(AWS accepts only OnFailure); remove it")
    path = _join(path, "OnFailure")
    d = c.obj(path, d.get("OnFailure"), ("Destination",))
    path = _join(path, "Destination")
    expected = ("an SQS queue, SNS topic or S3 bucket ARN of at most "
                f"{_MAX_DESTINATION_ARN} characters, or empty for none")
    arn = c.str_(path, d.get("Destination", MISSING), expected=expected,
                 max_len=_MAX_DESTINATION_ARN)
    if not arn:
        return None
    if arn.startswith("kafka://"):
        if kafka:
            topic = arn.removeprefix("kafka://")
            if _KAFKA_TOPIC_RE.fullmatch(topic) is None or len(topic) > 249:
                c.add(path, arn, "must be kafka://<topic> with a topic name of 2 to 249 of "
                      "a-z A-Z 0-9 . _ -")
                return None
            return arn
        else:
            c.add(path, arn, "Kafka topic destinations are only for Kafka event sources; "
                  f"must be {expected}")
        return None
    m = _ARN_RE.fullmatch(arn)
    service, region, account, resource = m.groups()[1:] if m else ("", None, None, "")
    if service == "sqs" and region and account and _SQS_NAME_RE.fullmatch(resource):
        if resource.endswith(".fifo"):
            c.add(path, arn, "FIFO queues are not supported as on-failure destinations; "
                  "use a standard SQS queue")
            return None
        return arn
    if service == "sns" and region and account and _SNS_NAME_RE.fullmatch(resource):
        if resource.endswith(".fifo"):
            c.add(path, arn, "FIFO topics are not supported as on-failure destinations; "
                  "use a standard SNS topic")
            return None
        return arn
    if (service == "s3" and not region and not account
            and _S3_BUCKET_RE.fullmatch(resource)):
        return arn
    c.add(path, arn, f"must be {expected} (arn:aws:sqs:<region>:<account>:<queue>, "
          "arn:aws:sns:<region>:<account>:<topic> or arn:aws:s3:::<bucket>)")
    return None


def _response_types(c: _Checker, path: str, value: object) -> tuple[str, ...]:
    if value is None or value is MISSING:
        return ()
    if not isinstance(value, list):
        c.add(path, value, "must be a list of 0 or 1 items: [ReportBatchItemFailures] or []")
        return ()
    if len(value) > 1:
        c.add(path, value, "must have at most 1 item: [ReportBatchItemFailures]")
        return ()
    for i, item in enumerate(value):
        c.choice(f"{path}[{i}]", item, ("ReportBatchItemFailures",), None, required=True)
    return ("ReportBatchItemFailures",) if "ReportBatchItemFailures" in value else ()


def _metrics_config(c: _Checker, path: str, value: object,
                    kafka: bool = False) -> tuple[str, ...]:
    d = c.obj(path, value, ("Metrics",))
    metrics = d.get("Metrics")
    if metrics is None:
        return ()
    mpath = _join(path, "Metrics")
    if kafka:
        names = ("EventCount", "ErrorCount", "KafkaMetrics")
        if not isinstance(metrics, list) or len(metrics) > 3:
            c.add(mpath, metrics, "must be a list of 0 to 3 of EventCount, ErrorCount, "
                  "KafkaMetrics")
            return ()
        return tuple(item for i, item in enumerate(metrics)
                     if c.choice(f"{mpath}[{i}]", item, names, None, required=True))
    if not isinstance(metrics, list) or len(metrics) > 1:
        c.add(mpath, metrics, "must be a list of 0 or 1 items: [EventCount] "
              "(ErrorCount and KafkaMetrics are for Kafka event sources only)")
        return ()
    out: list[str] = []
    for i, item in enumerate(metrics):
        if item in ("ErrorCount", "KafkaMetrics"):
            c.add(f"{mpath}[{i}]", item, "is for Kafka event sources only; must be EventCount")
        elif c.choice(f"{mpath}[{i}]", item, ("EventCount",), None, required=True):
            out.append("EventCount")
    return tuple(out)


def _tag_text_ok(text: str) -> bool:
    return all(ch.isalnum() or ch.isspace() or ch in _TAG_PUNCT for ch in text)


def _tags(c: _Checker, path: str, value: object) -> dict[str, str]:
    tags = c.str_map(path, value)
    if len(tags) > 50:
        c.add(path, MISSING, f"must have at most 50 tags (got {len(tags)})")
    allowed = "letters, digits, spaces and _ . : / = + - @"
    for k, v in tags.items():
        kpath = _join(path, k)
        if not (1 <= len(k) <= 128) or not _tag_text_ok(k):
            c.add(kpath, MISSING, f"tag keys must be 1 to 128 characters of {allowed}")
        elif k.lower().startswith("aws:"):
            c.add(kpath, MISSING, "tag keys starting with aws: are reserved by AWS")
        if len(v) > 256 or not _tag_text_ok(v):
            c.add(kpath, v, f"tag values must be 0 to 256 characters of {allowed}")
    return tags


def _target(c: _Checker, path: str, value: object, function_name: str | None,
            kafka: bool = False) -> Target:
    d = c.obj(path, value, tuple(_TARGET_FIELDS))
    ttype = c.choice(_join(path, "Type"), d.get("Type", MISSING), _TARGET_TYPES, "lambda")
    ttype = ttype or "lambda"
    for key in d:
        if ttype not in _TARGET_FIELDS[key]:
            only = " or ".join(_TARGET_FIELDS[key])
            c.add(_join(path, key), MISSING,
                  f"only applies to Type {only} (this target's Type is {ttype})")
    url = handler = qualifier = None
    headers: dict[str, str] = {}
    if ttype == "http":
        url = _url(c, _join(path, "Url"), d.get("Url", MISSING), required=True)
        headers = c.str_map(_join(path, "Headers"), d.get("Headers", MISSING), secret=True)
        for name, v in headers.items():
            if not _HEADER_NAME_RE.fullmatch(name):
                c.add(_join(path, f"Headers.{name}"), MISSING, "is not a valid HTTP header name")
            if "\r" in v or "\n" in v:
                c.add(_join(path, f"Headers.{name}"), MISSING,
                      "header values must not contain line breaks")
    elif ttype == "python":
        handler = c.str_(_join(path, "Handler"), d.get("Handler", MISSING), required=True,
                         pattern=_HANDLER_RE,
                         expected='a handler like "package.module:function"')
    elif ttype == "lambda":
        qpath = _join(path, "Qualifier")
        qualifier = c.str_(qpath, d.get("Qualifier", MISSING), pattern=_QUALIFIER_RE,
                           expected="a version or alias: 1 to 128 of a-z A-Z 0-9 $ _ -")
        if qualifier and function_name:
            m = _FUNCTION_RE.fullmatch(function_name)
            if function_name.startswith("arn:") or (m is not None and m.group("qualifier")):
                c.add(qpath, qualifier, "can only be combined with an unqualified function "
                      "name; append :<version or alias> to FunctionName instead")
                qualifier = None
        qualifier = qualifier or None
    role = c.str_(_join(path, "RoleArn"), d.get("RoleArn", MISSING), pattern=_ROLE_ARN_RE,
                  expected="an IAM role ARN (arn:aws:iam::<account>:role/<name>)")
    timeout = c.num(_join(path, "TimeoutSeconds"), d.get("TimeoutSeconds", MISSING),
                    _DEFAULT_TARGET.timeout_seconds, 0.0, _MAX_TIMEOUT_SECONDS, lo_exclusive=True)
    client = c.choice(_join(path, "Client"), d.get("Client", MISSING), _LAMBDA_CLIENTS, "fast")
    lanes = c.int_(_join(path, "KeyParallelism"), d.get("KeyParallelism", MISSING), 1, 1, 10)
    if lanes > 1 and not kafka:
        c.add(_join(path, "KeyParallelism"), lanes, "is for Kafka event sources; Kinesis "
              "mappings use ParallelizationFactor")
        lanes = 1
    return Target(type=cast(TargetType, ttype), url=url, handler=handler,
                  timeout_seconds=timeout, headers=headers, qualifier=qualifier,
                  role_arn=role or None, key_parallelism=lanes,
                  client=cast(LambdaClient, client or "fast"))


def _filter_criteria(c: _Checker, path: str, value: object, max_filters: int,
                     source_arn: str | None) -> tuple[str, ...]:
    if value is MISSING or value is None:
        return ()
    service = source_arn.split(":", 3)[2] if source_arn else ""
    object_keys = frozenset({"data": {"data"}, "dynamodb": {"dynamodb"}}.get(
        "data" if service == "kinesis" else service, set()))
    problems = filter_criteria_problems(value, max_filters, object_keys)
    for sub, message in problems:
        c.add(_join(path, sub) if sub else path, MISSING, message)
    if problems or not isinstance(value, dict):
        return ()
    return tuple(f["Pattern"] for f in value.get("Filters") or ())


def _mapping(c: _Checker, path: str, value: object, msk: dict[str, tuple[str, ...]],
             region: str, secrets: dict[str, SecretRef],
             tuning: TuningConfig | None = None,
             mq_brokers: dict[str, tuple[str, ...]] | None = None) -> Mapping | None:
    if not isinstance(value, dict):
        c.add(path, value, "must be a mapping of CreateEventSourceMapping parameters "
              f"(got {_type_name(value)})")
        return None
    if _is_mq(value):
        return _mq_mapping(c, path, value, mq_brokers or {}, secrets, tuning)
    start = len(c.issues)
    is_kafka = _is_kafka(value)
    d = c.obj(path, value, _MAPPING_FIELDS_KAFKA if is_kafka else _MAPPING_FIELDS,
              what="field", hint=_kafka_key_hint if is_kafka else _mapping_key_hint,
              extra_candidates=(*_NOT_FOR_KINESIS, *_OUTPUT_ONLY))

    def f(key: str) -> object:
        return d.get(key, MISSING)

    def p(key: str) -> str:
        return _join(path, key)

    kafka: KafkaSource | None = None
    source_arn: str | None
    if is_kafka:
        got = _kafka_source(c, path, d, msk, region, secrets)
        source_arn, kafka = got if got is not None else (None, None)
    else:
        source_arn = _event_source_arn(c, p("EventSourceArn"), f("EventSourceArn"))
    source_id = (source_arn or (f"kafka://{kafka.bootstrap}/{kafka.topic}" if kafka else None))
    raw_function = f("FunctionName")
    function_name = _function_name(c, p("FunctionName"), raw_function, source_arn or None)

    uuid_value = f("UUID")
    mapping_uuid: str | None
    if uuid_value is MISSING or uuid_value is None:
        mapping_uuid = (generated_uuid(source_id, cast(str, raw_function))
                        if source_id and function_name else None)
    else:
        mapping_uuid = c.str_(p("UUID"), uuid_value, pattern=_UUID_RE,
                              expected="1 to 128 of A-Z a-z 0-9 . _ -, starting with a letter "
                                       "or digit")

    service = source_arn.split(":", 3)[2] if source_arn else ""
    sqs = service == "sqs"
    fifo = sqs and bool(source_arn) and cast(str, source_arn).endswith(".fifo")
    source_name = ("Kafka" if is_kafka else
                   {"sqs": "SQS", "dynamodb": "DynamoDB Streams"}.get(service, "Kinesis"))
    if sqs:
        for key in _NOT_FOR_SQS:
            if key in d:
                c.add(p(key), MISSING, "does not apply to SQS event sources (stream sources "
                      "only); remove it")
    elif "ScalingConfig" in d:
        c.add(p("ScalingConfig"), MISSING, f"does not apply to {source_name} event sources "
              "(it is for SQS); remove it")

    enabled = c.bool_(p("Enabled"), f("Enabled"), True)
    window: float = c.int_(p("MaximumBatchingWindowInSeconds"),
                           f("MaximumBatchingWindowInSeconds"), 0, 0, 300)
    if is_kafka and f("MaximumBatchingWindowInSeconds") in (MISSING, None):
        window = _KAFKA_WINDOW_DEFAULT
    if fifo:
        batch_size = c.int_(p("BatchSize"), f("BatchSize"), 10, 1, SQS_FIFO_MAX_BATCH,
                            "must be an integer from 1 to 10 for a FIFO queue")
        if window:
            c.add(p("MaximumBatchingWindowInSeconds"), window,
                  "is not supported for FIFO queues; remove it or set 0")
    elif sqs:
        batch_size = c.int_(p("BatchSize"), f("BatchSize"), 10, 1, 10000)
        if batch_size > SQS_MAX_BATCH_WITHOUT_WINDOW and window < 1:
            c.add(p("BatchSize"), batch_size, "larger than 10 requires "
                  "MaximumBatchingWindowInSeconds of at least 1 for SQS queues")
    else:
        batch_size = c.int_(p("BatchSize"), f("BatchSize"), 100, 1, 10000)
    concurrency: int | None = None
    if sqs:
        scaling = c.obj(p("ScalingConfig"), f("ScalingConfig"), ("MaximumConcurrency",))
        raw_concurrency = scaling.get("MaximumConcurrency")
        if raw_concurrency is not None:
            concurrency = c.int_(_join(p("ScalingConfig"), "MaximumConcurrency"),
                                 raw_concurrency, 2, 2, 1000)
    position: str | None = None
    timestamp: float | None = None
    max_age = retries = -1
    bisect = False
    parallel = 1
    destination: str | None = None
    tumbling = 0
    if not sqs:
        positions = _DDB_STARTING_POSITIONS if service == "dynamodb" else _STARTING_POSITIONS
        position = c.choice(p("StartingPosition"), f("StartingPosition"), positions, None,
                            required=True, expected=f" for {source_name}")
        ts_value = f("StartingPositionTimestamp")
        if position == "AT_TIMESTAMP":
            if ts_value is MISSING or ts_value is None:
                c.add(p("StartingPositionTimestamp"), MISSING, "is required when "
                      "StartingPosition is AT_TIMESTAMP: epoch seconds (a number) or an "
                      "ISO-8601 date-time")
            else:
                timestamp = _starting_timestamp(c, p("StartingPositionTimestamp"), ts_value)
        elif ts_value is not MISSING and ts_value is not None:
            c.add(p("StartingPositionTimestamp"), ts_value,
                  "is only allowed with StartingPosition AT_TIMESTAMP")
        max_age = c.int_(p("MaximumRecordAgeInSeconds"), f("MaximumRecordAgeInSeconds"), -1,
                         -1, 604800, "must be -1 (no limit) or an integer from 60 to 604800",
                         ok=lambda n: n == -1 or n >= 60)
        retries = c.int_(p("MaximumRetryAttempts"), f("MaximumRetryAttempts"), -1, -1, 10000,
                         "must be an integer from -1 to 10000 (-1 = retry until the records "
                         "expire)")
        bisect = c.bool_(p("BisectBatchOnFunctionError"), f("BisectBatchOnFunctionError"),
                         False)
        parallel = c.int_(p("ParallelizationFactor"), f("ParallelizationFactor"), 1, 1, 10)
        destination = _destination(c, p("DestinationConfig"), f("DestinationConfig"), is_kafka)
        if (destination and kafka is not None
                and destination.removeprefix("kafka://") == kafka.topic):
            c.add(p("DestinationConfig.OnFailure.Destination"), destination,
                  "must not be the source topic (Lambda rejects this to avoid recursion)")
        if is_kafka and destination and retries == -1:
            retries = _KAFKA_RETRY_CAP
        tumbling = c.int_(p("TumblingWindowInSeconds"), f("TumblingWindowInSeconds"), 0, 0, 900,
                          "must be an integer from 0 (off) to 900")
        if tumbling and parallel > 1:
            c.add(p("ParallelizationFactor"), parallel,
                  "must be 1 with TumblingWindowInSeconds (a window's state is carried from one "
                  "invocation to the next, in shard order)")
    response_types = _response_types(c, p("FunctionResponseTypes"), f("FunctionResponseTypes"))
    max_filters = (tuning or TuningConfig()).max_filters_per_mapping
    patterns = _filter_criteria(c, p("FilterCriteria"), f("FilterCriteria"), max_filters,
                                source_arn)

    kms = c.str_(p("KMSKeyArn"), f("KMSKeyArn"), pattern=_KMS_ARN_RE,
                 expected="a KMS key ARN (arn:aws:kms:<region>:<account>:key/<id>) or empty")
    metrics_config = _metrics_config(c, p("MetricsConfig"), f("MetricsConfig"), is_kafka)
    tags = _tags(c, p("Tags"), f("Tags"))
    target = _target(c, p("Target"), f("Target"), function_name, is_kafka)

    if len(c.issues) > start or not (source_id and function_name and mapping_uuid):
        return None
    assert source_arn is not None
    if kafka is not None and not kafka.consumer_group_id:
        kafka = dataclasses.replace(kafka, consumer_group_id=mapping_uuid)
    return Mapping(
        uuid=mapping_uuid,
        event_source_arn=source_arn,
        function_name=function_name,
        enabled=enabled,
        batch_size=batch_size,
        maximum_batching_window_in_seconds=window,
        starting_position=cast(StartingPosition, position),
        starting_position_timestamp=timestamp,
        maximum_record_age_in_seconds=max_age,
        maximum_retry_attempts=retries,
        bisect_batch_on_function_error=bisect,
        parallelization_factor=parallel,
        on_failure_destination=destination,
        function_response_types=response_types,
        target=target,
        kms_key_arn=kms or None,
        tags=tags,
        metrics_config=metrics_config,
        filter_patterns=patterns,
        tumbling_window_in_seconds=tumbling,
        kafka=kafka,
        maximum_concurrency=concurrency,
    )


# --- Amazon MQ ----------------------------------------------------------------------------------

_MQ_BROKER_RE = re.compile(r"broker:[^:\s]{1,50}:b-[0-9a-fA-F-]{1,128}")
_MQ_SCHEMES = {"amqp": "rabbitmq", "amqps": "rabbitmq", "stomp": "activemq",
               "stomp+ssl": "activemq"}
_MQ_FIELDS = (
    "UUID", "EventSourceArn", "FunctionName", "Enabled", "BatchSize",
    "MaximumBatchingWindowInSeconds", "Queues", "SourceAccessConfigurations", "FilterCriteria",
    "KMSKeyArn", "MetricsConfig", "Tags", "Target",
)
_MQ_ACCESS_TYPES = ("BASIC_AUTH", "VIRTUAL_HOST")
_MQ_WINDOW_DEFAULT = 0.5  # Amazon MQ: 500 ms until set (whole seconds)


def _is_mq(value: dict[Any, Any]) -> bool:
    arn = value.get("EventSourceArn")
    return isinstance(arn, str) and arn.split(":")[2:3] == ["mq"]


def _mq_key_hint(key: str) -> str | None:
    if key in _MAPPING_FIELDS or key in _NOT_FOR_KINESIS:
        return ("does not apply to Amazon MQ event sources (they take Queues, BatchSize, "
                "MaximumBatchingWindowInSeconds, SourceAccessConfigurations, FilterCriteria and "
                "Enabled; failed batches are redelivered by the broker); remove it")
    return _mapping_key_hint(key)


def _mq_endpoint(c: _Checker, path: str, value: object) -> str | None:
    text = c.str_(path, value, required=True, expected="a broker endpoint URL")
    if not text:
        return None
    parts = urllib.parse.urlsplit(text)
    try:
        port = parts.port
    except ValueError:
        port = None
    if parts.scheme not in _MQ_SCHEMES or not parts.hostname or port is None:
        c.add(path, value, "must be a broker endpoint as DescribeBroker lists it: "
              "amqps://host:port or amqp://host:port (RabbitMQ), stomp+ssl://host:port or "
              "stomp://host:port (ActiveMQ)")
        return None
    return text


def _mq_brokers(c: _Checker, value: object) -> dict[str, tuple[str, ...]]:
    """``mq: {brokers: {<broker ARN>: URL | [URL, ...]}}``: each broker's endpoints."""
    def urls_of(path: str, endpoints: object) -> tuple[str, ...]:
        items = [endpoints] if isinstance(endpoints, str) else endpoints
        if not isinstance(items, list) or not 1 <= len(items) <= 10:
            c.add(path, endpoints, "must be an endpoint URL or a list of 1 to 10 of them")
            return ()
        urls = [_mq_endpoint(c, f"{path}[{i}]" if not isinstance(endpoints, str) else path, u)
                for i, u in enumerate(items)]
        engines = {_MQ_SCHEMES[u.split("://", 1)[0]] for u in urls if u}
        if len(engines) > 1:
            c.add(path, endpoints, "must all be endpoints of one engine (RabbitMQ or ActiveMQ)")
            return ()
        return tuple(u for u in urls if u) if all(urls) else ()

    return _arn_endpoints(c, "mq", "brokers", value, service="mq", resource_re=_MQ_BROKER_RE,
                          what="Amazon MQ broker ARNs to their endpoints",
                          arn_form="Amazon MQ broker ARNs "
                          "(arn:aws:mq:<region>:<account>:broker:<name>:<broker id>)",
                          endpoints=urls_of)


def _mq_mapping(c: _Checker, path: str, value: dict[Any, Any],
                brokers: dict[str, tuple[str, ...]], secrets: dict[str, SecretRef],
                tuning: TuningConfig | None) -> Mapping | None:
    """A mapping whose EventSourceArn is an Amazon MQ broker (AWS's parameters for MQ)."""
    start = len(c.issues)
    d = c.obj(path, value, _MQ_FIELDS, what="field", hint=_mq_key_hint,
              extra_candidates=(*_NOT_FOR_KINESIS, *_OUTPUT_ONLY))

    def f(key: str) -> object:
        return d.get(key, MISSING)

    def p(key: str) -> str:
        return _join(path, key)

    arn = c.str_(p("EventSourceArn"), f("EventSourceArn"), required=True,
                 expected="an Amazon MQ broker ARN")
    m = _ARN_RE.fullmatch(arn) if arn else None
    endpoints: tuple[str, ...] = ()
    if arn and (m is None or not m.group(3) or not m.group(4)
                or _MQ_BROKER_RE.fullmatch(m.group(5)) is None):
        c.add(p("EventSourceArn"), arn, "must be an Amazon MQ broker ARN "
              "arn:aws:mq:<region>:<12-digit account>:broker:<name>:<broker id>")
    elif arn:
        endpoints = brokers.get(arn, ())
        if not endpoints:
            c.add(p("EventSourceArn"), arn, "esm-poller needs this broker's endpoint: add it "
                  "under mq.brokers (mq: {brokers: {<ARN>: amqps://host:5671}} for RabbitMQ, "
                  "stomp+ssl://host:61614 for ActiveMQ)")
    engine = _MQ_SCHEMES[endpoints[0].split("://", 1)[0]] if endpoints else None

    queue = _one_name(c, p("Queues"), f("Queues"), "Amazon MQ", "queue name", max_len=1000,
                      expected="a queue name (1 to 1000 characters)")

    auth: KafkaAuth | None = None
    vhost = "/"
    apath = p("SourceAccessConfigurations")
    raw_access = f("SourceAccessConfigurations")
    if raw_access is MISSING or raw_access is None:
        c.add(apath, MISSING, "is required for Amazon MQ: [{Type: BASIC_AUTH, URI: <secret "
              'ARN>}] (the secret holds {"username": ..., "password": ...})')
    elif not isinstance(raw_access, list) or not 1 <= len(raw_access) <= 22:
        c.add(apath, raw_access, "must be a list of 1 to 22 {Type, URI} items")
    else:
        seen: set[str] = set()
        for i, item in enumerate(raw_access):
            ipath = f"{apath}[{i}]"
            item_d = c.obj(ipath, item, ("Type", "URI"))
            access_type = c.choice(_join(ipath, "Type"), item_d.get("Type", MISSING),
                                   _MQ_ACCESS_TYPES, None, required=True,
                                   expected=" for Amazon MQ")
            uri = c.str_(_join(ipath, "URI"), item_d.get("URI", MISSING), required=True,
                         max_len=200, expected="1 to 200 characters")
            if not access_type or not uri:
                continue
            if access_type in seen:
                c.add(_join(ipath, "Type"), access_type, "may appear only once")
                continue
            seen.add(access_type)
            if access_type == "VIRTUAL_HOST":
                if engine == "activemq":
                    c.add(_join(ipath, "Type"), access_type, "is for RabbitMQ brokers; this "
                          "broker's endpoint is ActiveMQ (stomp)")
                vhost = uri
            elif uri in secrets:
                auth = KafkaAuth(access_type, uri, secrets[uri])
            elif _SECRET_ARN_RE.fullmatch(uri):
                auth = KafkaAuth(access_type, uri, SecretRef("secretsmanager", uri))
            else:
                c.add(_join(ipath, "URI"), uri, "must be a Secrets Manager secret ARN "
                      "(read with GetSecretValue), or be listed under secrets with the file or "
                      "environment variable holding its JSON "
                      "(secrets: {<URI>: {file: PATH}} or {<URI>: {env: NAME}})")
        if "BASIC_AUTH" not in seen:
            c.add(apath, raw_access, "must hold a BASIC_AUTH item (Amazon MQ brokers take "
                  "user name and password authentication)")

    raw_function = f("FunctionName")
    function_name = _function_name(c, p("FunctionName"), raw_function, arn or None)
    uuid_value = f("UUID")
    mapping_uuid: str | None
    if uuid_value is MISSING or uuid_value is None:
        mapping_uuid = (generated_uuid(f"{arn}\n{queue}", cast(str, raw_function))
                        if arn and function_name and queue else None)
    else:
        mapping_uuid = c.str_(p("UUID"), uuid_value, pattern=_UUID_RE,
                              expected="1 to 128 of A-Z a-z 0-9 . _ -, starting with a letter "
                                       "or digit")
    enabled = c.bool_(p("Enabled"), f("Enabled"), True)
    window: float = c.int_(p("MaximumBatchingWindowInSeconds"),
                           f("MaximumBatchingWindowInSeconds"), 0, 0, 300)
    if f("MaximumBatchingWindowInSeconds") in (MISSING, None):
        window = _MQ_WINDOW_DEFAULT
    batch_size = c.int_(p("BatchSize"), f("BatchSize"), 100, 1, 10000)
    max_filters = (tuning or TuningConfig()).max_filters_per_mapping
    patterns = _filter_criteria(c, p("FilterCriteria"), f("FilterCriteria"), max_filters, arn)
    kms = c.str_(p("KMSKeyArn"), f("KMSKeyArn"), pattern=_KMS_ARN_RE,
                 expected="a KMS key ARN (arn:aws:kms:<region>:<account>:key/<id>) or empty")
    metrics_config = _metrics_config(c, p("MetricsConfig"), f("MetricsConfig"), False)
    tags = _tags(c, p("Tags"), f("Tags"))
    target = _target(c, p("Target"), f("Target"), function_name)
    if (len(c.issues) > start or not (arn and function_name and mapping_uuid and queue
                                      and engine and auth)):
        return None
    assert arn and function_name and mapping_uuid and queue and engine and auth
    return Mapping(
        uuid=mapping_uuid, event_source_arn=arn, function_name=function_name, enabled=enabled,
        batch_size=batch_size, maximum_batching_window_in_seconds=window,
        filter_patterns=patterns, target=target, kms_key_arn=kms or None, tags=tags,
        metrics_config=metrics_config,
        mq=MqSource(engine=cast(Literal["rabbitmq", "activemq"], engine), queue=queue,
                    endpoints=endpoints, auth=auth, virtual_host=vhost),
    )


def _top_key_hint(key: str) -> str | None:
    if key in _MAPPING_FIELDS:
        return "unknown top-level field; mapping parameters go inside an item of mappings"
    return None


def parse_config(data: object, source: str = "<config>",
                 env: MappingABC[str, str] | None = None) -> Config:
    """Validate already-loaded YAML data (expanding ${VAR}); raises ConfigError on problems."""
    env_issues: list[ConfigIssue] = []
    order: dict[str, int] = {}
    try:
        data = _expand(data, "", os.environ if env is None else env, env_issues, order)
    except RecursionError:
        raise ConfigError(source, [ConfigIssue("", MISSING, "nested too deeply (a recursive "
                                               "YAML alias?)")]) from None
    order.pop("", None)
    c = _Checker(env_issues)
    if data is None:
        raise ConfigError(source, [ConfigIssue("", MISSING, "the file is empty; expected a "
                                               "mapping with a mappings list")])
    if not isinstance(data, dict):
        raise ConfigError(source, [ConfigIssue("", MISSING, "expected a mapping with keys "
                                               f"{', '.join(_TOP_FIELDS)} (got "
                                               f"{_type_name(data)})")])
    top = c.obj("", data, _TOP_FIELDS, hint=_top_key_hint)
    aws = _aws(c, top.get("aws"))
    state = _state(c, top.get("state"))
    metrics = _metrics(c, top.get("metrics"))
    tuning = _tuning(c, top.get("tuning"))
    log_level, log_format = _log(c, top.get("log"))
    msk = _msk(c, top.get("msk"))
    secrets = _secrets(c, top.get("secrets"))
    mq_brokers = _mq_brokers(c, top.get("mq"))

    raw = top.get("mappings")
    mappings: list[Mapping] = []
    if raw is None:
        c.add("mappings", MISSING, "is required: a list of at least one mapping")
    elif not isinstance(raw, list):
        c.add("mappings", raw, f"must be a list of mappings (got {_type_name(raw)})")
    elif not raw:
        c.add("mappings", raw, "must list at least one mapping")
    else:
        seen_uuid: dict[str, int] = {}
        seen_pair: dict[tuple[str, str], Mapping] = {}
        for i, item in enumerate(raw):
            m = _mapping(c, f"mappings[{i}]", item, msk, aws.region, secrets, tuning,
                         mq_brokers)
            if m is None:
                continue
            if state.store == "dynamodb" and m.tumbling_window_in_seconds:
                c.add(f"mappings[{i}].TumblingWindowInSeconds", m.tumbling_window_in_seconds,
                      "is not supported with state.store: dynamodb (a window's state would "
                      "have to move with the lease); use state.store: sqlite (one replica)")
            if m.uuid in seen_uuid:
                c.add(f"mappings[{i}].UUID", m.uuid,
                      f"duplicate UUID (also used by mappings[{seen_uuid[m.uuid]}])")
                continue
            seen_uuid[m.uuid] = i
            pair = (m.event_source_arn or (f"kafka://{m.kafka.bootstrap}/{m.kafka.topic}"
                                           if m.kafka else ""), m.function_arn)
            if pair in seen_pair:
                first = seen_pair[pair]
                c.add(f"mappings[{i}]", MISSING,
                      f'The event source arn (" {m.event_source_arn} ") and function '
                      f'(" {m.function_name} ") provided mapping already exists. Please update '
                      f"or delete the existing mapping with UUID {first.uuid} "
                      f"(mappings[{seen_uuid[first.uuid]}])")
                continue
            seen_pair[pair] = m
            mappings.append(m)

    if c.issues:
        raise ConfigError(source, _in_file_order(c.issues, order))
    return Config(
        mappings=tuple(mappings), aws=aws, state=state, metrics=metrics, tuning=tuning,
        msk_clusters=msk, mq_brokers=mq_brokers,
        log_level=log_level, log_format=cast(Literal["auto", "json", "console"], log_format),
    )


# --- summary -------------------------------------------------------------------------------------


def _limit(n: int, unit: str = "") -> str:
    return "unlimited" if n == -1 else f"{n}{unit}"


def _mapping_line(m: Mapping) -> str:
    t = m.target
    if t.type == "http":
        target = f"http {t.url}"
    elif t.type == "python":
        target = f"python {t.handler}"
    else:
        target = f"lambda{':' + t.qualifier if t.qualifier else ''}"
    if m.mq is not None:
        settings = [
            "enabled" if m.enabled else "DISABLED",
            f"BatchSize {m.batch_size}",
            f"window {m.maximum_batching_window_in_seconds}s",
        ]
    elif m.source == "sqs":
        settings = [
            "enabled" if m.enabled else "DISABLED",
            "FIFO queue" if m.fifo else "standard queue",
            f"BatchSize {m.batch_size}",
            f"window {m.maximum_batching_window_in_seconds}s",
            f"MaximumConcurrency {m.maximum_concurrency or 'unset'}",
        ]
    else:
        position = str(m.starting_position)
        if m.starting_position_timestamp is not None:
            when = datetime.fromtimestamp(m.starting_position_timestamp, UTC)
            position += f" {when.isoformat().replace('+00:00', 'Z')}"
        settings = [
            "enabled" if m.enabled else "DISABLED",
            position,
            f"BatchSize {m.batch_size}",
            f"window {m.maximum_batching_window_in_seconds}s",
            (f"KeyParallelism {t.key_parallelism}" if m.kafka is not None
             else f"ParallelizationFactor {m.parallelization_factor}"),
            f"retries {_limit(m.maximum_retry_attempts)}",
            f"max age {_limit(m.maximum_record_age_in_seconds, 's')}",
            f"bisect {'on' if m.bisect_batch_on_function_error else 'off'}",
        ]
    if m.report_batch_item_failures:
        settings.append("ReportBatchItemFailures")
    if m.filter_patterns:
        settings.append(f"{len(m.filter_patterns)} filter(s)")
    if m.tumbling_window_in_seconds:
        settings.append(f"tumbling window {m.tumbling_window_in_seconds}s")
    if m.source not in ("sqs", "mq"):
        settings.append(f"on failure -> {m.on_failure_destination or 'none'}")
    if t.timeout_seconds != _DEFAULT_TARGET.timeout_seconds:
        settings.append(f"timeout {_fmt(t.timeout_seconds)}s")
    notes = []
    if m.metrics_config:
        notes.append("MetricsConfig accepted (Prometheus metrics are always exported)")
    if m.kms_key_arn:
        notes.append("KMSKeyArn accepted (no effect: it only encrypts FilterCriteria)")
    if m.tags:
        notes.append(f"{len(m.tags)} tag(s) (no effect)")
    source = m.event_source_arn
    if m.kafka is not None:
        source = (f"{source or 'self-managed Kafka ' + m.kafka.bootstrap} topic {m.kafka.topic} "
                  f"group {m.kafka.consumer_group_id}")
    if m.mq is not None:
        source = (f"{source} ({m.mq.engine} {m.mq.endpoints[0]}) queue {m.mq.queue}"
                  + (f" vhost {m.mq.virtual_host}" if m.mq.engine == "rabbitmq" else ""))
    line = (f"  {m.uuid}: {source} -> {m.function_name} via {target} | "
            + ", ".join(settings))
    return line + (f" | {'; '.join(notes)}" if notes else "")


def summary(config: Config) -> str:
    """Human summary of a valid config: a few general lines, then one line per mapping."""
    aws = config.aws
    enabled = sum(1 for m in config.mappings if m.enabled)
    n = len(config.mappings)
    where = [f"region {aws.region}"]
    if aws.endpoint_url:
        where.append(f"endpoint {aws.endpoint_url}")
    for name, svc in sorted(aws.services.items()):
        parts = [p for p in (svc.endpoint_url, svc.region) if p]
        if parts:
            where.append(f"{name} {' '.join(parts)}")
    where.append("explicit credentials" if aws.access_key_id else "default credential chain")
    metrics = (f"http://{config.metrics.host}:{config.metrics.port}/metrics"
               if config.metrics.port else "disabled")
    st = config.state
    state = (f"dynamodb table {st.table} ({st.billing_mode}, failover {_fmt(st.failover_seconds)}s)"
             if st.store == "dynamodb" else f"sqlite {st.path}")
    lines = [
        f"config OK: {n} mapping{'s' if n != 1 else ''} ({enabled} enabled)",
        f"aws: {', '.join(where)}",
        f"state: {state}; metrics: {metrics}; "
        f"log: {config.log_level} {config.log_format}",
    ]
    default_tuning = TuningConfig()
    tuned = [f"{f.name} {_fmt(getattr(config.tuning, f.name))}"
             for f in dataclasses.fields(TuningConfig)
             if getattr(config.tuning, f.name) != getattr(default_tuning, f.name)]
    if tuned:
        lines.append(f"tuning: {', '.join(tuned)}")
    lines.append("mappings:")
    lines += [_mapping_line(m) for m in config.mappings]
    return "\n".join(lines)
