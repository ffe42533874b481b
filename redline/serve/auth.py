"""Sessions, CSRF tokens and the login rate limit of the review service.

Sources of the choices (OWASP Cheat Sheet Series):

- *Session Management*: the session id is 256 bits from :mod:`secrets`, opaque, in a cookie
  that is ``HttpOnly``, ``SameSite=Strict``, ``Path=/`` and, behind TLS, ``Secure`` with the
  ``__Host-`` prefix; sessions live on the server (this process's memory) with an idle timeout
  (default 30 min) and an absolute one (12 h); a login issues a new id (no session fixation) and
  a logout destroys it on the server.
- *Cross-Site Request Forgery Prevention*: every POST form carries a token bound to the session
  (HMAC-SHA256 of the session id with the installation's secret, the "HMAC based token"
  pattern), compared with :func:`hmac.compare_digest`; the login form too, through a
  pre-login session. ``SameSite=Strict`` is the second layer.
- *Authentication*: the same answer for a wrong name and a wrong password, and at most
  :data:`MAX_FAILURES` failed logins per user name and per client address in
  :data:`FAILURE_WINDOW_S` before ``429 Too Many Requests`` with ``Retry-After``.

The installation's secret (32 random bytes, hex) lies next to the signing key as
``serve_secret`` (mode 0600), made on first use: never in the repository or an output folder.
The cookie carries ``<id>.<mac>`` (the MAC with the secret), so a forged or guessed cookie is
refused before any look-up.

Sessions are in memory: a restart logs everyone out, and the service runs as one process
(``redline serve`` starts one uvicorn worker).

API tokens (``redline users token``; RFC 6750 bearer tokens, OWASP REST Security Cheat Sheet)
are stateless and never stored: ``rl1.<name>.<expiry>.<seq>.<mac>``, the user's name (base64url
of its UTF-8), the expiry (Unix seconds, UTC), the seq of the user's latest signed ``user``
entry (:attr:`redline.register.users.User.seq`) and an HMAC-SHA256 with the installation's
secret over those and the register's identity (the hash of its first history entry). A token is
good while the MAC matches (:func:`hmac.compare_digest`), it has not expired, and the user is
enabled with that seq still: disabling the user or any change to their account (password, role,
scope) revokes all their tokens at once, and a token grants nothing beyond its user's rights.
A new secret revokes every token (and session).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
import threading
import time
import unicodedata
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from redline.errors import RegisterError

__all__ = [
    "Session", "SessionStore", "LoginLimiter", "load_secret", "secret_path", "MAX_FAILURES", "FAILURE_WINDOW_S", "IDLE_TIMEOUT_S",
    "ABSOLUTE_TIMEOUT_S", "cookie_name", "ApiToken", "issue_token", "read_token", "TOKEN_DAYS", "MAX_TOKEN_DAYS",
]

#: OWASP Session Management: idle timeouts of 15–30 min for low-risk applications.
IDLE_TIMEOUT_S = 30 * 60.0
#: an absolute limit as well: a working day and a half
ABSOLUTE_TIMEOUT_S = 12 * 3600.0
#: a pre-login session (the login form's CSRF token) lasts this long
ANONYMOUS_TIMEOUT_S = 15 * 60.0
#: at most this many sessions are kept; beyond it the least recently used pre-login ones go first
MAX_SESSIONS = 10_000
MAX_FAILURES = 5
FAILURE_WINDOW_S = 15 * 60.0
SECRET_FILE = "serve_secret"
#: default and longest life of an API token (days): short-lived credentials limit what a leaked
#: one can do (OWASP REST Security Cheat Sheet); a script's owner issues a new one
TOKEN_DAYS = 30
MAX_TOKEN_DAYS = 365
_TOKEN_PREFIX = "rl1"


def cookie_name(secure: bool) -> str:
    """``__Host-redline`` over TLS (the browser then refuses it without Secure, Path=/ and no
    Domain), else ``redline_session``."""
    return "__Host-redline" if secure else "redline_session"


def secret_path(key_path: Path) -> Path:
    """Where the installation's session secret lies: next to the signing key."""
    return Path(key_path).parent / SECRET_FILE


def load_secret(path: Path) -> bytes:
    """The installation's session secret at ``path``, made (32 random bytes, mode 0600) when
    missing. Refuses one that others may read."""
    path = Path(path)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # made by another process meanwhile
            pass
        else:
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_hex(32) + "\n")
    if path.stat().st_mode & 0o077:
        raise RegisterError(f"session secret {path} can be read by others (mode {path.stat().st_mode & 0o777:o}); run `chmod 600 {path}`")
    try:
        secret = bytes.fromhex(path.read_text(encoding="ascii").strip())
    except (ValueError, UnicodeDecodeError):
        raise RegisterError(f"session secret {path} is not hex; delete it to have a new one made (everyone logs in again)") from None
    if len(secret) < 16:
        raise RegisterError(f"session secret {path} is shorter than 16 bytes; delete it to have a new one made")
    return secret


@dataclass
class Session:
    """A session on the server: the user's name (None before login), when it began and was last
    used, and messages for the next page."""

    sid: str
    user: str | None
    created: float
    last_seen: float
    flash: list[tuple[str, str]] = field(default_factory=list)  # (kind: ok | error, text)


class SessionStore:
    """Server-side sessions keyed by a random id; cookies carry ``<id>.<mac>``."""

    def __init__(self, secret: bytes, *, idle_timeout_s: float = IDLE_TIMEOUT_S, absolute_timeout_s: float = ABSOLUTE_TIMEOUT_S,
                 clock: Callable[[], float] = time.monotonic):
        self._secret = secret
        self.idle_timeout_s = idle_timeout_s
        self.absolute_timeout_s = absolute_timeout_s
        self._clock = clock
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()

    def _mac(self, purpose: str, sid: str) -> str:
        return hmac.new(self._secret, f"{purpose}:{sid}".encode(), hashlib.sha256).hexdigest()

    def cookie_value(self, session: Session) -> str:
        """What the cookie holds for ``session``."""
        return f"{session.sid}.{self._mac('cookie', session.sid)}"

    def csrf_token(self, session: Session) -> str:
        """The session's CSRF token (HMAC of its id with the secret)."""
        return self._mac("csrf", session.sid)

    def csrf_ok(self, session: Session | None, token: str | None) -> bool:
        """True when ``token`` is ``session``'s CSRF token (constant-time comparison)."""
        if session is None or not token:
            return False
        return hmac.compare_digest(self.csrf_token(session).encode(), token.encode("utf-8", "replace"))

    def _expired(self, s: Session, now: float) -> bool:
        idle = self.idle_timeout_s if s.user is not None else min(self.idle_timeout_s, ANONYMOUS_TIMEOUT_S)
        return now - s.last_seen > idle or now - s.created > self.absolute_timeout_s

    def new(self, user: str | None) -> Session:
        """A new session (a new random id) for ``user`` (None: before login)."""
        now = self._clock()
        s = Session(sid=secrets.token_urlsafe(32), user=user, created=now, last_seen=now)
        with self._lock:
            self._prune(now)
            self._sessions[s.sid] = s
        return s

    def _prune(self, now: float) -> None:
        for sid in [k for k, s in self._sessions.items() if self._expired(s, now)]:
            del self._sessions[sid]
        if len(self._sessions) >= MAX_SESSIONS:
            anonymous = sorted((s.last_seen, k) for k, s in self._sessions.items() if s.user is None)
            for _, sid in anonymous[: len(self._sessions) - MAX_SESSIONS + 1]:
                del self._sessions[sid]

    def get(self, cookie: str | None, *, touch: bool = True) -> Session | None:
        """The live session a cookie names (None: none, forged, or expired and removed); a
        request through it counts as activity when ``touch``."""
        if not cookie or "." not in cookie:
            return None
        sid, _, mac = cookie.rpartition(".")
        if not hmac.compare_digest(self._mac("cookie", sid).encode(), mac.encode("utf-8", "replace")):
            return None
        now = self._clock()
        with self._lock:
            s = self._sessions.get(sid)
            if s is None:
                return None
            if self._expired(s, now):
                del self._sessions[sid]
                return None
            if touch:
                s.last_seen = now
            return s

    def drop(self, session: Session | None) -> None:
        """End ``session`` on the server."""
        if session is not None:
            with self._lock:
                self._sessions.pop(session.sid, None)

    def drop_user(self, name: str) -> None:
        """End every session of user ``name`` (disabled, or their account changed)."""
        with self._lock:
            for sid in [k for k, s in self._sessions.items() if s.user == name]:
                del self._sessions[sid]


class LoginLimiter:
    """Failed logins per key (``name:…``, ``addr:…``) in a sliding window: after
    :data:`MAX_FAILURES` in :data:`FAILURE_WINDOW_S`, :meth:`retry_after` says how long to wait."""

    def __init__(self, *, max_failures: int = MAX_FAILURES, window_s: float = FAILURE_WINDOW_S, clock: Callable[[], float] = time.monotonic):
        self.max_failures = max_failures
        self.window_s = window_s
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    @staticmethod
    def keys(name: str, address: str) -> tuple[str, str]:
        """The limiter's keys of a login: the name (case- and form-folded) and the client address."""
        return f"name:{unicodedata.normalize('NFKC', (name or '').strip()).casefold()}", f"addr:{address}"

    def _recent(self, key: str, now: float) -> deque[float]:
        q = self._failures.get(key)
        if q is None:
            return deque()
        while q and now - q[0] > self.window_s:
            q.popleft()
        if not q:
            del self._failures[key]
        return q

    def retry_after(self, keys: tuple[str, ...]) -> int | None:
        """Seconds until a login for ``keys`` may be tried again (None: now)."""
        now = self._clock()
        waits = []
        with self._lock:
            for key in keys:
                q = self._recent(key, now)
                if len(q) >= self.max_failures:
                    waits.append(q[len(q) - self.max_failures] + self.window_s - now)
        return max(1, int(max(waits)) + 1) if waits else None

    def failed(self, keys: tuple[str, ...]) -> None:
        """Count a failed login for each of ``keys``."""
        now = self._clock()
        with self._lock:
            if len(self._failures) > 100_000:  # bound the memory a flood of names can take
                for key in list(self._failures):
                    self._recent(key, now)
            for key in keys:
                self._failures.setdefault(key, deque()).append(now)

    def succeeded(self, name_key: str) -> None:
        """A successful login clears its name's failures (not its address's)."""
        with self._lock:
            self._failures.pop(name_key, None)


@dataclass(frozen=True)
class ApiToken:
    """What an API token says (its MAC checked): the user's ``name``, when it ``expires`` (Unix
    seconds, UTC) and the ``seq`` of the user's latest ``user`` entry when it was issued."""

    name: str
    expires: int
    seq: int


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _token_mac(secret: bytes, register_id: str, name_b64: str, expires: int, seq: int) -> str:
    msg = f"redline-api-token:{_TOKEN_PREFIX}:{register_id}:{name_b64}:{expires}:{seq}".encode()
    return _b64(hmac.new(secret, msg, hashlib.sha256).digest())


def issue_token(secret: bytes, register_id: str, name: str, seq: int, expires: int) -> str:
    """A bearer token for user ``name`` (whose latest ``user`` entry is ``seq``) of the register
    ``register_id``, good until ``expires`` (Unix seconds, UTC). Nothing is stored."""
    name_b64 = _b64(name.encode("utf-8"))
    return f"{_TOKEN_PREFIX}.{name_b64}.{int(expires)}.{int(seq)}.{_token_mac(secret, register_id, name_b64, int(expires), int(seq))}"


def read_token(secret: bytes, register_id: str, token: str) -> ApiToken | None:
    """What ``token`` says, if this installation issued it for this register (its MAC matches,
    constant-time comparison); None for anything else. Expiry and revocation are the caller's
    to check against the clock and the register."""
    if not token or len(token) > 512 or not token.isascii():
        return None
    parts = token.split(".")
    if len(parts) != 5 or parts[0] != _TOKEN_PREFIX:
        return None
    _, name_b64, expires, seq, mac = parts
    if not (expires.isdigit() and seq.isdigit()) or len(expires) > 12 or len(seq) > 18:
        return None
    if not hmac.compare_digest(_token_mac(secret, register_id, name_b64, int(expires), int(seq)).encode(), mac.encode("ascii", "replace")):
        return None
    try:
        name = base64.urlsafe_b64decode(name_b64 + "=" * (-len(name_b64) % 4)).decode("utf-8")
    except (binascii.Error, ValueError):
        return None
    return ApiToken(name=name, expires=int(expires), seq=int(seq))
