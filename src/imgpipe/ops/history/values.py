"""Small values the history model shares: execution statuses, payload text, durations.

Pure: no AWS, no rendering library. `duration` is the one way the CLI and the local
report spell a duration.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from datetime import datetime
from typing import Any

RUNNING = "RUNNING"
SUCCEEDED = "SUCCEEDED"
FAILED = "FAILED"
STOPPED_STATUSES = frozenset({"FAILED", "TIMED_OUT", "ABORTED"})


def clip(text: str | None, limit: int | None) -> str | None:
    """`text` cut to `limit` characters with a note of how much was left out."""
    if text is None or limit is None or len(text) <= limit:
        return text
    return f"{text[:limit]}… (+{len(text) - limit} chars)"


def compact_json(text: str | None) -> str | None:
    """Re-serialise JSON without spaces so more of it fits in a clipped line."""
    if text is None:
        return None
    try:
        return json.dumps(json.loads(text), separators=(",", ":"), ensure_ascii=False)
    except ValueError:
        return text


def lambda_payload(text: str | None, omit: Collection[str] = ()) -> str | None:
    """The `Payload` of a `lambda:invoke` request or response, else the whole document.

    The integration wraps the function's own input and result in request/response
    metadata (FunctionName, StatusCode, SdkHttpMetadata...) that says nothing about
    the upload. `omit` drops top-level payload fields the caller shows elsewhere.
    """
    if text is None:
        return None
    try:
        document = json.loads(text)
    except ValueError:
        return text
    if isinstance(document, dict) and "Payload" in document:
        document = document["Payload"]
    if omit and isinstance(document, dict):
        document = {name: value for name, value in document.items() if name not in omit}
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False)


def seconds_between(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return max((end - start).total_seconds(), 0.0)


def duration(seconds: float | None, missing: str = "—") -> str:
    """`412 ms`, `3.25 s`, up to two minutes in seconds, then `2 min 5 s`; `missing` for None."""
    if seconds is None:
        return missing
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.2f} s"
    minutes, rest = divmod(seconds, 60)
    return f"{minutes:.0f} min {rest:.0f} s"


def iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def rounded(seconds: float | None) -> float | None:
    return round(seconds, 3) if seconds is not None else None


def loads(text: str | None) -> Any:
    """The JSON document in `text`, or None when there is none or it is not JSON."""
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def event_details(event: Mapping[str, Any]) -> Mapping[str, Any]:
    """The `<type>EventDetails` member of a history event (`{}` when absent).

    The API names the member after the event type with a lower-case first letter
    (`TaskFailed` -> `taskFailedEventDetails`), except that every `<X>StateEntered`
    / `<X>StateExited` shares `stateEnteredEventDetails` / `stateExitedEventDetails`.
    """
    details = event.get(details_member(str(event.get("type", ""))))
    return details if isinstance(details, Mapping) else {}


def details_member(kind: str) -> str:
    """The name of the details member of a history event of type `kind` (see `event_details`)."""
    if kind.endswith("StateEntered"):
        return "stateEnteredEventDetails"
    if kind.endswith("StateExited"):
        return "stateExitedEventDetails"
    return f"{kind[:1].lower()}{kind[1:]}EventDetails"
