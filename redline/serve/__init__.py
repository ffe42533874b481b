"""The review service: county reviewers, provincial specialists and acceptance officers decide on
alerts in a browser, each under their own account (``redline serve``; README "Review service",
docs/architecture.md §2).

:func:`create_app` builds the FastAPI application for a register (pages from Jinja2 templates
with autoescaping, assets from installed packages, no CDN, and the JSON API under ``/api/``,
:mod:`redline.serve.api`); :func:`run` serves it with uvicorn; :func:`user_token` issues a
script's bearer token for the API.
Decisions go through :meth:`redline.register.Register.review`, so the web and the command line
obey the same rules. This package imports :mod:`redline.register`, :mod:`redline.vocabulary`,
:mod:`redline.outputs` and :mod:`redline.errors`; only the command line imports it.
"""

from __future__ import annotations

from fastapi import FastAPI

from redline.serve.api import CSRF_HEADER, user_token
from redline.serve.app import PAGE_SIZE, SECURITY_HEADERS, SORT_COLUMNS, create_app
from redline.serve.auth import (
    FAILURE_WINDOW_S, IDLE_TIMEOUT_S, MAX_FAILURES, MAX_TOKEN_DAYS, TOKEN_DAYS, LoginLimiter, SessionStore, load_secret, secret_path,
)
from redline.serve.i18n import DISMISS_REASONS

__all__ = [
    "create_app", "run", "PAGE_SIZE", "SORT_COLUMNS", "SECURITY_HEADERS", "DISMISS_REASONS", "IDLE_TIMEOUT_S", "MAX_FAILURES",
    "FAILURE_WINDOW_S", "LoginLimiter", "SessionStore", "load_secret", "secret_path", "user_token", "CSRF_HEADER", "TOKEN_DAYS", "MAX_TOKEN_DAYS",
]


def run(app: FastAPI, *, host: str = "127.0.0.1", port: int = 8000, forwarded_allow_ips: str = "127.0.0.1") -> None:
    """Serve ``app`` with uvicorn, one process (sessions live in its memory) until Ctrl-C or
    SIGTERM. ``X-Forwarded-For`` / ``-Proto`` are trusted from ``forwarded_allow_ips`` only (the
    reverse proxy on the same host), so the login rate limit sees the real client address."""
    import uvicorn

    uvicorn.run(app, host=host, port=port, proxy_headers=True, forwarded_allow_ips=forwarded_allow_ips, server_header=False,
                date_header=True, log_level="info", workers=None)
