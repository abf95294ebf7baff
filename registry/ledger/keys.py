"""The ledger's Ed25519 key: made by ``registry ledger-key create``, read from PEM files only.

The private key signs each entry's hash and each head; it lives in a file named by
``REGISTRY_LEDGER_KEY`` and never in the database, so write access to the database alone cannot
forge a signature. Verification uses a public key the verifier chose (``--public-key``,
``REGISTRY_LEDGER_PUBLIC_KEY``, or the public half of ``REGISTRY_LEDGER_KEY``), never one stored
beside the entries."""

from __future__ import annotations

import base64
import binascii
import os
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel

from registry.exceptions import ConfigError, InputError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

__all__ = ["KEY_ENV", "PUBLIC_KEY_ENV", "CreatedKey", "create_key", "signing_key", "verifying_key", "public_text",
           "public_pem", "sign", "signature_valid"]

KEY_ENV = "REGISTRY_LEDGER_KEY"
PUBLIC_KEY_ENV = "REGISTRY_LEDGER_PUBLIC_KEY"


class CreatedKey(BaseModel):
    key_file: str
    public_key: str
    public_key_pem: str


def public_text(key: Ed25519PublicKey) -> str:
    """The 32 raw bytes in base64: the form ``disclosures head`` prints and a public key file may hold."""
    from cryptography.hazmat.primitives import serialization

    return base64.b64encode(key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)).decode()


def public_pem(key: Ed25519PublicKey) -> str:
    from cryptography.hazmat.primitives import serialization

    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def create_key(out: Path, public_out: Path | None = None) -> CreatedKey:
    """A new private key in ``out`` (PKCS#8 PEM, mode 0600, never overwritten); optionally its
    public half in ``public_out``."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    try:
        # O_EXCL: overwriting a ledger key would make every entry it signed unverifiable
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise InputError("exists already; a ledger key is never overwritten", str(out)) from None
    except OSError as exc:
        raise InputError(f"cannot write: {exc.strerror}", str(out)) from None
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    public = key.public_key()
    if public_out is not None:
        try:
            public_out.write_text(public_pem(public))
        except OSError as exc:
            raise InputError(f"cannot write: {exc.strerror}", str(public_out)) from None
    return CreatedKey(key_file=str(out), public_key=public_text(public), public_key_pem=public_pem(public))


def _read(path: str, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"{what} {path}: cannot read: {exc.strerror}") from None


@lru_cache(maxsize=4)
def _private(path: str, _mtime: float) -> Ed25519PrivateKey:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    try:
        key = serialization.load_pem_private_key(_read(path, KEY_ENV), password=None)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{KEY_ENV} {path}: not an unencrypted PEM private key ({exc})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"{KEY_ENV} {path}: not an Ed25519 key (make one with `registry ledger-key create`)")
    return key


def signing_key() -> Ed25519PrivateKey | None:
    """The private key named by REGISTRY_LEDGER_KEY, or None when it is not set."""
    path = os.environ.get(KEY_ENV)
    if not path:
        return None
    try:
        mtime = os.stat(path).st_mtime
    except OSError as exc:
        raise ConfigError(f"{KEY_ENV} {path}: cannot read: {exc.strerror}") from None
    return _private(path, mtime)


def load_public(path: str, what: str = "--public-key") -> Ed25519PublicKey:
    """A public key file: PEM (SubjectPublicKeyInfo), or the base64 text ``disclosures head`` prints."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    data = _read(path, what).strip()
    try:
        if data.startswith(b"-----BEGIN"):
            key = serialization.load_pem_public_key(data)
            if not isinstance(key, Ed25519PublicKey):
                raise ValueError("not an Ed25519 key")
            return key
        return Ed25519PublicKey.from_public_bytes(base64.b64decode(data, validate=True))
    except (ValueError, TypeError, binascii.Error) as exc:
        raise ConfigError(f"{what} {path}: not an Ed25519 public key ({exc})") from None


def verifying_key(public_key_file: str | None = None) -> Ed25519PublicKey | None:
    """The key ``verify`` checks signatures with: ``--public-key``, else REGISTRY_LEDGER_PUBLIC_KEY,
    else the public half of REGISTRY_LEDGER_KEY; None when none is configured. When both variables
    are set they must agree (a mismatch is a misconfiguration, not a tampered ledger)."""
    if public_key_file:
        return load_public(public_key_file)
    private = signing_key()
    configured = os.environ.get(PUBLIC_KEY_ENV)
    public = load_public(configured, PUBLIC_KEY_ENV) if configured else None
    if private is not None and public is not None and public_text(private.public_key()) != public_text(public):
        raise ConfigError(f"{PUBLIC_KEY_ENV} is not the public half of {KEY_ENV}")
    return public or (private.public_key() if private is not None else None)


def sign(key: Ed25519PrivateKey, message: bytes) -> str:
    return base64.b64encode(key.sign(message)).decode()


def signature_valid(key: Ed25519PublicKey, signature: str, message: bytes) -> bool:
    from cryptography.exceptions import InvalidSignature

    try:
        key.verify(base64.b64decode(signature, validate=True), message)
    except (InvalidSignature, ValueError, binascii.Error):
        return False
    return True
