"""The pipeline's domain errors.

The state machine catches these by class name (Lambda reports the exception's class
name as the error type), so a class name is part of the public interface: renaming
one is a breaking change to `statemachine/pipeline.asl.json` and to the `reason.code`
that downstream consumers read.

Three families:

* `ImageRejected` -- the upload itself is unacceptable. The execution ends with
  status `rejected`; retrying would give the same answer.
* `Skipped` -- nothing to do: the event is a duplicate, a replay, or lost a race to a
  newer state of the key (docs/delivery.md). Not a failure: the execution succeeds with
  status `skipped`. The stages return skips as results; the handlers raise them so the
  state machine branches by Catch, without a Choice state on the processed path.
* `TransientError` -- the pipeline could not finish now but may later (throttling,
  5xx). The state machine retries these with backoff and fails when retries run out.
  `KeyBusy` (another execution is writing the same key's outputs) is retried the same
  way, for longer.

Anything else is a bug or a misconfiguration and fails the execution.
"""

from __future__ import annotations


class ImgpipeError(Exception):
    """Base class of every error the pipeline raises on purpose."""


class ConfigError(ImgpipeError):
    """An environment variable is missing or malformed (raised at cold start)."""


class InvalidEvent(ImgpipeError):
    """The state machine input is not an S3 "Object Created"/"Object Deleted" event.

    Not a rejection: it means the rule or the caller is misconfigured, so it fails the
    execution for someone to look at.
    """


class RenditionMissing(ImgpipeError):
    """A rendition the resize step reported is not in the output bucket (or differs)."""


class ImageRejected(ImgpipeError):
    """The source object cannot be turned into renditions; never retried."""

    @property
    def code(self) -> str:
        return type(self).__name__


class EmptyObject(ImageRejected):
    """The object has no bytes."""


class UnsupportedFormat(ImageRejected):
    """The bytes are not an image in a format on the allow-list."""


class CorruptImage(ImageRejected):
    """The bytes claim to be an image but the header or data is damaged."""


class ObjectTooLarge(ImageRejected):
    """The object is larger than the byte budget."""


class TooManyPixels(ImageRejected):
    """Width x height exceeds the pixel budget (decompression-bomb guard)."""


class TooManyFrames(ImageRejected):
    """An animation has more frames than the frame budget allows."""


class DecodeTooLarge(ImageRejected):
    """Decoding would need more memory than the resize function has, or an animation
    has more frames x pixels than the animation budget."""


class KeyNotRenderable(ImageRejected):
    """The source key cannot be mapped to output keys within S3's key length."""


class Skipped(ImgpipeError):
    """The execution has nothing to do; its class name is the skip's `reason.code`."""

    @property
    def code(self) -> str:
        return type(self).__name__


class ObjectGone(Skipped):
    """The object was deleted before it could be processed."""


class Superseded(Skipped):
    """A newer state of the key (an upload, a deletion) took over; its event handles it."""


class Duplicate(Skipped):
    """The object is already rendered or rejected, or the same event is being handled."""


class StillExists(Skipped):
    """A deletion, but the key's current version keeps its outputs."""


class NothingToDelete(Skipped):
    """A deletion of a key that has no outputs."""


class ForeignBucket(Skipped):
    """The event names a bucket other than the stack's input bucket."""


class UpToDate(Skipped):
    """A backfill found the current version rendered with the current rendition set."""


def skip(code: str, message: str) -> Skipped:
    """The `Skipped` subclass for a skip code (the base class for a code it does not know)."""
    kind = next((c for c in Skipped.__subclasses__() if c.__name__ == code), Skipped)
    return kind(message)


class TransientError(ImgpipeError):
    """A dependency failed in a way that is worth retrying (throttling, 5xx)."""


class KeyBusy(ImgpipeError):
    """Another execution holds the lock on this source key's outputs.

    The state machine retries it with a long backoff: a holder keeps the lock for
    seconds, and one that died keeps it until its Lambda deadline has passed.
    """


# The names the state machine routes to its rejection path. Kept next to the classes so
# a test can check the ASL's Catch lists stay in step with this module.
REJECTION_ERRORS: tuple[str, ...] = tuple(cls.__name__ for cls in ImageRejected.__subclasses__())
# The names the state machine routes to its skip path.
SKIP_ERRORS: tuple[str, ...] = tuple(cls.__name__ for cls in Skipped.__subclasses__())
