"""JSON lines for the service's own log: one object per record, with the fields a request or a model
load carries (``log.info("request", extra={"fields": {...}})``). Standard library only."""

from __future__ import annotations

import datetime
import json
import logging
import sys

FIELDS = "fields"


class JsonLines(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.datetime.fromtimestamp(record.created, datetime.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            **getattr(record, FIELDS, {}),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure(level: str = "INFO") -> None:
    """The ``inference`` loggers write JSON lines to stderr (gunicorn's error log), not to the root
    logger's handlers; idempotent. The Lambda leaves its runtime's logging as it is."""
    logger = logging.getLogger("inference")
    if not any(isinstance(h.formatter, JsonLines) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonLines())
        logger.addHandler(handler)
    logger.setLevel(level.upper())
    logger.propagate = False
