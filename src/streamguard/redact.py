"""Credentials inside URIs (``s3://KEY:SECRET@bucket``, ``ftp://user:pass@host``) never reach a file or a log:
exp_config.json is redacted before it is written, and every log record's message on its way out."""
from __future__ import annotations

import logging
import re
from typing import Any

# scheme://userinfo@ : the userinfo (user, or user:password) is what is hidden. A password may hold "/"
# (AWS secret keys do), so after "user:" anything up to the "@" counts; a host:port/path@x is hidden too.
_USERINFO = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*://)"
                       r"(?P<userinfo>[^/@\s:'\"]+:[^@\s'\"]*|[^/@\s'\"]+)@")
HIDDEN = "***"


def redact(value: Any) -> Any:
    """A copy of ``value`` (string, or lists/dicts of them) with the userinfo of every URI replaced."""
    if isinstance(value, str):
        return _USERINFO.sub(lambda m: f"{m.group('scheme')}{HIDDEN}@", value) if "://" in value else value
    if isinstance(value, dict):
        return {k: redact(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(redact(v) for v in value)
    return value


_base_factory = logging.getLogRecordFactory()


def _factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
    record = _base_factory(*args, **kwargs)
    try:
        message = record.getMessage()
    except Exception:  # noqa: BLE001 - a malformed record is logging's to report, not ours
        return record
    if "://" in message and "@" in message:
        record.msg, record.args = redact(message), None
    return record


def install() -> None:
    """Redact every log record created from now on (any logger: ours, Lightning's, fsspec's)."""
    if logging.getLogRecordFactory() is not _factory:
        logging.setLogRecordFactory(_factory)


install()
