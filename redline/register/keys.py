"""Signing keys: each installation signs what it writes into a register with its own ed25519 key.

The key is a PEM file (PKCS#8, unencrypted, file mode 0600) kept **outside** the output folder:
``$REDLINE_KEY`` when set, else ``$XDG_CONFIG_HOME/redline/signing_key.pem`` (default
``~/.config/redline/signing_key.pem``). ``redline keys create`` makes it, ``redline keys show``
prints its id and public key. A key is named by its *key id*: the first 16 hex digits of the
sha256 of the raw 32-byte public key.

Ed25519 (RFC 8032) through ``cryptography``: deterministic signatures of 64 bytes, public keys of
32 bytes; a signature over the row hash of a history row binds the row, and through its
``prev_hash`` the whole chain before it, to the key.

This module is a leaf of :mod:`redline.register`: it imports ``cryptography`` and
:mod:`redline.errors` only.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from redline.errors import RegisterError

__all__ = ["KEY_ENV", "SigningKey", "default_key_path", "key_id_of", "load_key", "create_key", "throwaway_key", "verify_signature"]

#: Environment variable naming the signing key file (overrides the default path).
KEY_ENV = "REDLINE_KEY"


def default_key_path() -> Path:
    """``$REDLINE_KEY``, else ``$XDG_CONFIG_HOME/redline/signing_key.pem`` (``~/.config`` when unset)."""
    if os.environ.get(KEY_ENV):
        return Path(os.environ[KEY_ENV]).expanduser()
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "redline" / "signing_key.pem"


def key_id_of(public_hex: str) -> str:
    """The key id of a public key given as 64 hex digits: 16 hex digits of its sha256."""
    return hashlib.sha256(bytes.fromhex(public_hex)).hexdigest()[:16]


@dataclass(frozen=True)
class SigningKey:
    """An installation's private key, its public key (hex) and key id, and where it was read."""

    private: Ed25519PrivateKey
    public_hex: str
    path: Path

    @property
    def key_id(self) -> str:
        return key_id_of(self.public_hex)

    def sign(self, message: str) -> str:
        """The ed25519 signature of ``message`` (UTF-8), 128 hex digits."""
        return self.private.sign(message.encode()).hex()


def _public_hex(private: Ed25519PrivateKey) -> str:
    return private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex()


def load_key(path: Path | str | None = None) -> SigningKey:
    """The signing key at ``path`` (default :func:`default_key_path`).

    Raises
    ------
    RegisterError
        No file there, a file others may read, or not an ed25519 PEM key: one line naming the
        file and what to do.
    """
    p = Path(path).expanduser() if path is not None else default_key_path()
    if not p.is_file():
        raise RegisterError(f"no signing key at {p}; create one with `redline keys create` (or set {KEY_ENV} to the key file)")
    if p.stat().st_mode & 0o077:
        raise RegisterError(f"signing key {p} can be read by others (mode {p.stat().st_mode & 0o777:o}); run `chmod 600 {p}`")
    try:
        private = serialization.load_pem_private_key(p.read_bytes(), password=None)
    except (ValueError, TypeError, OSError) as exc:
        raise RegisterError(f"signing key {p} cannot be read ({exc}); create a new one with `redline keys create --key OTHER_FILE`") from None
    if not isinstance(private, Ed25519PrivateKey):
        raise RegisterError(f"signing key {p} is not an ed25519 key; create one with `redline keys create`")
    return SigningKey(private=private, public_hex=_public_hex(private), path=p)


def create_key(path: Path | str | None = None) -> SigningKey:
    """Create a new ed25519 key at ``path`` (default :func:`default_key_path`), mode 0600, its
    folder 0700 when created. Refuses to overwrite an existing file."""
    p = Path(path).expanduser() if path is not None else default_key_path()
    if p.exists():
        raise RegisterError(f"{p} exists; a signing key is never overwritten (it signs history already written); show it with `redline keys show`")
    p.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    return SigningKey(private=private, public_hex=_public_hex(private), path=p)


def verify_signature(public_hex: str, message: str, signature_hex: str) -> bool:
    """True when ``signature_hex`` is ``public_hex``'s ed25519 signature of ``message``."""
    try:
        Ed25519PublicKey.from_public_bytes(bytes.fromhex(public_hex)).verify(bytes.fromhex(signature_hex), message.encode())
        return True
    except (InvalidSignature, ValueError):
        return False


def throwaway_key(folder: Path | str) -> SigningKey:
    """A new key in ``folder``, made this process's (and its children's) signing key through
    ``$REDLINE_KEY``: for benchmarks and tests, which never sign with the user's own key."""
    key = create_key(Path(folder) / "signing_key.pem")
    os.environ[KEY_ENV] = str(key.path)
    return key
