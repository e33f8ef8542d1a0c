"""Secrets kept out of everything a command stores, prints or writes: URL credentials
found by parsing, secret-looking keys and ``key=value`` pairs masked by ``***``
(``experiments.core.tracking`` re-exports these for the run logger and the commands)."""

from __future__ import annotations

import re
from typing import Any, Mapping

# A URL, also as Hydra escapes it in a sweep's overrides (``https\://user\:pw@host``).
_URL = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*)(?P<colon>\\?:)//(?P<rest>[^\s'\"<>,]+)")
_SECRET_KEY = re.compile(r"(password|passwd|secret|token|api[_-]?key|credential)", re.I)
_SECRET_PAIR = re.compile(r"(?P<key>[\w.+~-]*(password|passwd|secret|token|api[_-]?key|"
                          r"credential)[\w.-]*=)[^&\s,]+", re.I)


def _redact_url(scheme: str, rest: str, colon: str = ":") -> str:
    """One URL with its credentials (``user:password@``) masked, and the values of
    secret-looking query keys (``?token=...``).

    The user information ends at the last ``@`` of the authority: a password may hold
    ``@``, ``/`` or ``?`` (``postgresql://u:pa/ss@db/x``), which ``urllib.parse`` and
    SQLAlchemy's ``make_url`` both split at the wrong place. So the last ``@`` of the URL
    ends it when what precedes it is plainly ``user[:password]`` (no ``/?#``) or starts
    with ``user:`` (a password with one of them); else the last ``@`` before the path.
    The query is parsed by ``urllib.parse``: every pair whose key looks secret is masked.
    """
    from urllib.parse import parse_qsl, quote

    at = rest.rfind("@")
    before = rest[:at]
    head = re.split(r"[/?#]", before, maxsplit=1)[0]
    if at >= 0 and not (before == head or ":" in head):
        at = rest.rfind("@", 0, len(head))  # the "@" is in the path: only one before it
    if at >= 0:
        rest = "***" + rest[at:]
    path, sep, query = rest.partition("?")
    if sep:
        pairs = parse_qsl(query, keep_blank_values=True)
        secret = [k == "sig" or bool(_SECRET_KEY.search(k)) for k, _ in pairs]
        if any(secret):  # a signed URL's "sig" too
            query = "&".join(f"{quote(k, safe='')}=" + ("***" if hidden else quote(v, safe=""))
                             for (k, v), hidden in zip(pairs, secret))
    return f"{scheme}{colon}//{path}{sep}{query}"


def redact(value: str) -> str:
    """``value`` with the credentials of every URL in it (``user:password@``, secret query
    values such as ``?token=...``) and every ``<secret key>=<value>`` pair masked by
    ``***``."""
    value = _URL.sub(lambda m: _redact_url(m["scheme"], m["rest"], m["colon"]), str(value))
    return _SECRET_PAIR.sub(r"\g<key>***", value)


def _is_secret(key: str) -> bool:
    """A config key whose value must never be logged (``password``, ``api_key``, ...)."""
    return bool(_SECRET_KEY.search(str(key).rsplit(".", 1)[-1].lstrip("+~")))


def redact_params(params: Mapping[str, Any]) -> dict[str, str]:
    """Params as strings, with secret-looking keys masked and URL credentials removed."""
    return {k: "***" if _is_secret(k) else redact(str(v)) for k, v in params.items()}


def redact_override(override: str) -> str:
    """A Hydra override (``key=value``) safe to log or print."""
    key, sep, _ = override.partition("=")
    return f"{key}=***" if sep and _is_secret(key) else redact(override)


def redact_config(config: Any, key: str = "") -> Any:
    """A nested config with secret-looking keys masked, URL credentials removed, and
    every string that is an override (``key=value``) redacted as one."""
    if isinstance(config, Mapping):
        return {k: redact_config(v, str(k)) for k, v in config.items()}
    if isinstance(config, (list, tuple)):
        return [redact_config(v, key) for v in config]
    if _is_secret(key):
        return "***"
    return redact_override(config) if isinstance(config, str) else config
