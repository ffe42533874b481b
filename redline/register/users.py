"""The register's users: who may record decisions, in which role and for which counties and zones.

A register with users is in **multi-user mode**: every decision names an enabled user
(``Register.review(by=…)``) whose role and scope allow it (:mod:`redline.register.rules`). A
register without users keeps the **single-user mode** of earlier versions: any name is recorded
as given, and the installation's signing key vouches for it.

A user is a row of the ``users`` table (``name`` unique, ``role``, ``counties``, ``zones``,
``password_hash``, ``disabled``, ``created``, ``seq``) and, for every change, a signed history
entry of kind ``user`` by an admin key whose payload (:func:`user_payload`) holds the name, the
role, the counties, the zones, the disabled flag and ``password_sha256``: the sha256 of the
stored password hash (never the hash itself), so ``Register.verify`` sees an edited role or
scope, an inserted or deleted user and a swapped password hash.

A **team** (a field team, a county team: the 绿盾 workflow hands a field check to a team, whoever
of it goes) is a row of the ``teams`` table (``name`` unique, ``members``: a comma list of user
names, ``disabled``, ``created``, ``seq``) and, for every change, a signed ``team`` entry by an
admin key whose payload (:func:`team_payload`) holds the name, the members and the disabled
flag. Users and teams share one namespace (:func:`check_name`): a team may not take a user's
name, nor a user a team's. Alerts assigned to an enabled team are "assigned to" each of its
members (:func:`holder_names`), within the member's own scope.

Passwords are hashed with argon2id, the first choice of the OWASP Password Storage Cheat Sheet,
through ``argon2-cffi``'s :class:`~argon2.PasswordHasher` with its defaults (RFC 9106 low-memory
profile: t=3, m=64 MiB, p=4, 16-byte salt). A password is never stored, logged or recorded.

This module imports ``argon2-cffi``, :mod:`redline.vocabulary` and :mod:`redline.errors`.
"""

from __future__ import annotations

import functools
import hashlib
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from redline.errors import RegisterError
from redline.vocabulary import USER_ROLES

__all__ = [
    "ROLES", "RESERVED_PREFIX", "MIN_PASSWORD_LENGTH", "User", "check_name", "check_password", "check_role", "parse_codes",
    "hash_password", "password_matches", "dummy_verify", "user_payload", "Team", "parse_members", "team_payload", "holder_names",
]

ROLES = tuple(USER_ROLES)
#: Names of this prefix are the system's own (``redline-scan`` records a scan's re-checks).
RESERVED_PREFIX = "redline-"
#: OWASP Authentication Cheat Sheet: at least 8 characters; no composition rules, no maximum
#: below 64 (argon2 takes any length; 1024 bounds the work one request can ask for).
MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 1024
_MAX_NAME = 64
_CODE = re.compile(r"^[A-Za-z0-9_.\-]{1,32}$")

_HASHER = PasswordHasher()  # argon2id, RFC 9106 low-memory defaults


@functools.cache
def _dummy_hash() -> str:
    """Verified against when a name is unknown, so a login takes as long for a wrong name as for
    a wrong password (no user enumeration by timing; OWASP Authentication Cheat Sheet). Made on
    first use: one argon2id hash (~0.13 s) that commands without a login need not pay."""
    return _HASHER.hash("redline: no such user")


@dataclass(frozen=True)
class User:
    """A user of the register. ``counties`` / ``zones`` empty: every county / zone. ``seq``: the
    seq of the user's latest signed ``user`` entry, which every change to the account (role,
    scope, disabled, password) moves; the review service's API tokens name it, so any change
    revokes them (:mod:`redline.serve.auth`)."""

    name: str
    role: str
    counties: tuple[str, ...] = ()
    zones: tuple[str, ...] = ()
    disabled: bool = False
    created: str = ""
    seq: int = 0

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> User:
        """A user from a ``users`` row (a mapping of its columns)."""
        return cls(name=str(row["name"]), role=str(row["role"]), counties=parse_codes(row.get("counties"), "counties"),
                   zones=parse_codes(row.get("zones"), "zones"), disabled=bool(int(row.get("disabled") or 0)), created=str(row.get("created") or ""),
                   seq=int(row.get("seq") or 0))

    def in_scope(self, admin_id: object, zone_id: object) -> bool:
        """True when an alert of county ``admin_id`` and zone ``zone_id`` is within the user's
        counties and zones (exact codes; an empty list is every one)."""
        return (not self.counties or str(admin_id) in self.counties) and (not self.zones or str(zone_id) in self.zones)

    def scope_text(self) -> str:
        """``counties 5101,5102; zones all``: the scope in one phrase."""
        return f"counties {','.join(self.counties) or 'all'}; zones {','.join(self.zones) or 'all'}"


@dataclass(frozen=True)
class Team:
    """A team of users: alerts assigned to it are each member's (:func:`holder_names`) while it is
    enabled. ``members``: user names, in the order given. ``seq``: the seq of its latest signed
    ``team`` entry."""

    name: str
    members: tuple[str, ...] = ()
    disabled: bool = False
    created: str = ""
    seq: int = 0

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Team:
        """A team from a ``teams`` row (a mapping of its columns)."""
        members = tuple(m for m in (p.strip() for p in str(row.get("members") or "").split(",")) if m)
        return cls(name=str(row["name"]), members=members, disabled=bool(int(row.get("disabled") or 0)), created=str(row.get("created") or ""),
                   seq=int(row.get("seq") or 0))

    def reaches(self, users: Mapping[str, User], admin_id: object, zone_id: object) -> bool:
        """True when the team is enabled and one of its enabled members (looked up in ``users``:
        name → :class:`User`) has an alert of county ``admin_id`` and zone ``zone_id`` in scope."""
        return not self.disabled and any((u := users.get(m)) is not None and not u.disabled and u.in_scope(admin_id, zone_id) for m in self.members)


def check_name(name: str, what: str = "user name") -> str:
    """A user (or team: users and teams share this namespace) name as stored: stripped, 1–64 printable characters without spaces or commas, not
    the system's (``redline-scan`` or any ``redline-…``). The one rule for every name the
    register records: a user's, an assignee's (``--to``) and a reviewer's (``--by``, also in the
    single-user mode), so no name can carry a line break, a terminal escape code or a fake
    history line. ``what`` names the value in the message (e.g. ``--by``). Raises one-line
    :class:`RegisterError`."""
    n = unicodedata.normalize("NFC", (name or "").strip())
    if not n:
        raise RegisterError(f"the {what} is empty; give a name such as " + ("巡护一队 or field-1" if "team" in what else "wang.gong or 王工"))
    if len(n) > _MAX_NAME or any(c.isspace() or c == "," or not c.isprintable() for c in n):
        raise RegisterError(f"{what} {_shown(n)}: use at most {_MAX_NAME} printable characters without spaces or commas")
    if n.lower().startswith(RESERVED_PREFIX):
        raise RegisterError(f"{what} {n!r}: names starting with {RESERVED_PREFIX!r} are the system's (e.g. redline-scan); choose another")
    return n


def _shown(value: str, limit: int = 40) -> str:
    """``value`` quoted for a one-line message (control characters escaped by ``repr``), its
    first ``limit`` characters and its length when longer."""
    return repr(value) if len(value) <= limit else f"{value[:limit]!r}… ({len(value)} characters)"


def parse_members(text: str | Iterable[str]) -> tuple[str, ...]:
    """A team's members (a comma list, or names) as a tuple of user names (:func:`check_name`;
    blanks dropped, order kept, no repeats); one-line :class:`RegisterError` when none is left."""
    parts = text.split(",") if isinstance(text, str) else list(text)
    out: list[str] = []
    for part in parts:
        if not str(part).strip():
            continue
        name = check_name(str(part))
        if name not in out:
            out.append(name)
    if not out:
        raise RegisterError("--members is empty; give the team's users as a comma list, e.g. --members wang,li")
    return tuple(out)


def holder_names(user: str, teams: Iterable[Team]) -> frozenset[str]:
    """The holders whose alerts are "assigned to" user ``user``: the user and each enabled team
    of ``teams`` that has them as a member."""
    return frozenset({user, *(t.name for t in teams if not t.disabled and user in t.members)})


def check_role(role: str) -> str:
    """``role`` if it is one of :data:`ROLES`, else one-line :class:`RegisterError`."""
    if role not in ROLES:
        raise RegisterError(f"--role {role!r} is not a role; use one of {', '.join(ROLES)}")
    return role


def parse_codes(text: object, what: str) -> tuple[str, ...]:
    """A comma list of county (``admin_id``) or zone codes as a tuple (blanks dropped, order
    kept, no repeats); empty text is every county or zone."""
    if text is None or (isinstance(text, float) and text != text):
        return ()
    out: list[str] = []
    for part in str(text).split(","):
        code = part.strip()
        if not code:
            continue
        if not _CODE.match(code):
            raise RegisterError(f"--{what} {code!r}: a code has 1–32 letters, digits, '.', '_' or '-' (e.g. --{what} 510182,510183)")
        if code not in out:
            out.append(code)
    return tuple(out)


def check_password(password: str) -> str:
    """``password`` if it is long enough (OWASP: at least 8 characters, no composition rules)."""
    if password is None or len(password) < MIN_PASSWORD_LENGTH:
        raise RegisterError(f"the password is too short; use at least {MIN_PASSWORD_LENGTH} characters (a passphrase is best)")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise RegisterError(f"the password is longer than {MAX_PASSWORD_LENGTH} characters")
    return password


def hash_password(password: str) -> str:
    """The argon2id hash of ``password`` (PHC string format, salt and parameters included)."""
    return _HASHER.hash(check_password(password))


def password_matches(stored_hash: str, password: str) -> bool:
    """True when ``password`` matches ``stored_hash`` (constant-time compare inside argon2)."""
    if not password or len(password) > MAX_PASSWORD_LENGTH:
        return False
    try:
        return _HASHER.verify(stored_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def dummy_verify(password: str) -> None:
    """Spend the time of one verification, for a name that is not a user (always fails)."""
    password_matches(_dummy_hash(), password or "-")


def user_payload(name: str, role: str, counties: Iterable[str], zones: Iterable[str], disabled: bool, password_hash: str) -> dict[str, Any]:
    """The signed payload of a ``user`` entry: everything of the row but the password hash
    itself, which enters as its sha256."""
    return {"name": name, "role": role, "counties": ",".join(counties), "zones": ",".join(zones), "disabled": bool(disabled),
            "password_sha256": hashlib.sha256(password_hash.encode()).hexdigest()}


def team_payload(name: str, members: Iterable[str], disabled: bool) -> dict[str, Any]:
    """The signed payload of a ``team`` entry: the team's name, its members (a list of user
    names) and the disabled flag."""
    return {"name": name, "members": list(members), "disabled": bool(disabled)}
