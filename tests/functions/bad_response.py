"""Returns malformed partial-batch responses (each should make the whole batch fail).

``handler`` returns the JSON in ``FN_BAD_RESPONSE`` (default: an empty ``itemIdentifier``);
the named handlers return one case each.
"""

from __future__ import annotations

import json
import os
from typing import Any

DEFAULT = {"batchItemFailures": [{"itemIdentifier": ""}]}


def handler(event: Any, context: Any) -> Any:
    raw = os.environ.get("FN_BAD_RESPONSE")
    return json.loads(raw) if raw else DEFAULT


def empty_identifier(event: Any, context: Any) -> Any:
    return {"batchItemFailures": [{"itemIdentifier": ""}]}


def null_identifier(event: Any, context: Any) -> Any:
    return {"batchItemFailures": [{"itemIdentifier": None}]}


def missing_identifier(event: Any, context: Any) -> Any:
    return {"batchItemFailures": [{"foo": 123}]}


def unknown_identifier(event: Any, context: Any) -> Any:
    return {"batchItemFailures": [{"itemIdentifier": "123"}]}


def not_serializable(event: Any, context: Any) -> Any:
    return {"batchItemFailures": {1, 2}}  # the runtime cannot marshal a set
