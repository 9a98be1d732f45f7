"""imgpipe: an event-driven image pipeline on AWS (S3 -> EventBridge -> Step Functions)."""

__version__ = "0.1.0"
