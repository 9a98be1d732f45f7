"""Errors as Step Functions records them, with a Lambda function's cause decoded."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, ClassVar

from imgpipe.ops.history.values import loads

_PY_FRAME = re.compile(r'File "(?P<file>[^"]+)", line (?P<line>\d+), in (?P<func>\S+)')


@dataclass(frozen=True)
class ErrorInfo:
    """An error as Step Functions recorded it, with the Lambda cause decoded.

    Lambda reports a function's exception as a JSON cause (`errorType`,
    `errorMessage`, `stackTrace`); anything else (States.*, Lambda service errors)
    keeps its cause as plain text.
    """

    error: str
    cause: str | None = None
    error_type: str | None = None
    message: str | None = None
    frame: str | None = None
    # The Lambda invocation's request id: the key to its log lines.
    request_id: str | None = None

    # The name an error gets when Step Functions recorded none.
    UNNAMED: ClassVar[str] = "(no error name)"

    @classmethod
    def parse(cls, error: str | None, cause: str | None) -> ErrorInfo:
        name = error or cls.UNNAMED
        try:
            decoded = json.loads(cause) if cause else None
        except ValueError:
            decoded = None
        if not isinstance(decoded, dict) or not (
            "errorMessage" in decoded or "errorType" in decoded
        ):
            return cls(error=name, cause=cause)
        message = decoded.get("errorMessage")
        error_type = decoded.get("errorType")
        request_id = decoded.get("requestId")
        return cls(
            error=name,
            cause=cause,
            error_type=str(error_type) if error_type is not None else None,
            message=str(message) if message is not None else None,
            frame=last_frame(decoded.get("stackTrace")),
            request_id=str(request_id) if request_id else None,
        )

    @property
    def detail(self) -> str:
        """The human part: the exception message, else the first line of the cause."""
        if self.message:
            return self.message
        if self.cause:
            return self.cause.strip().splitlines()[0] if self.cause.strip() else ""
        return ""

    @property
    def stack_trace(self) -> str | None:
        """A Lambda cause's whole `stackTrace`, its lines joined as the runtime wrote them."""
        decoded = loads(self.cause)
        trace = decoded.get("stackTrace") if isinstance(decoded, dict) else None
        if not isinstance(trace, list):
            return None
        return "".join(str(line) for line in trace) or None

    @property
    def summary(self) -> str:
        return f"{self.error}: {self.detail}" if self.detail else self.error

    def to_dict(self) -> dict[str, Any]:
        return {
            "error": self.error,
            "error_type": self.error_type,
            "message": self.message,
            "frame": self.frame,
            "request_id": self.request_id,
            "cause": self.cause,
        }


def last_frame(stack: Any) -> str | None:
    """The innermost frame of a Lambda `stackTrace`, as `file:line in function: code`.

    Python runtimes send a list of traceback strings; older ones a list of
    `[file, line, function, code]`; other runtimes free-form strings.
    """
    if not isinstance(stack, list) or not stack:
        return None
    frame = stack[-1]
    if isinstance(frame, list) and len(frame) >= 3:
        where = f"{frame[0]}:{frame[1]} in {frame[2]}"
        return f"{where}: {frame[3]}" if len(frame) > 3 and frame[3] else where
    lines = [line.strip() for line in str(frame).splitlines() if line.strip()]
    if not lines:
        return None
    match = _PY_FRAME.search(lines[0])
    if match is None:
        return lines[0]
    where = f"{match['file']}:{match['line']} in {match['func']}"
    return f"{where}: {lines[1]}" if len(lines) > 1 else where
