"""Encryption at rest for provider secrets (model API keys, API tool header secrets)."""
from __future__ import annotations

import base64

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from flask import current_app


def _fernet(secret: str) -> Fernet:
    # HKDF turns any length of MAGNET_SECRET_KEY into the 32-byte key Fernet needs; the info string
    # keeps this key separate from anything else we may derive from the same secret later.
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"magnet:secrets:v1").derive(
        secret.encode()
    )
    return Fernet(base64.urlsafe_b64encode(key))


def _current() -> Fernet:
    return current_app.extensions["magnet.fernet"]


def make_fernet(secret: str) -> Fernet:
    return _fernet(secret)


def encrypt(plaintext: str) -> str:
    return _current().encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    """Decrypt a stored secret; a changed MAGNET_SECRET_KEY makes old secrets unreadable, said plainly."""
    try:
        return _current().decrypt(token.encode()).decode()
    except InvalidToken as exc:
        raise RuntimeError(
            "a stored secret cannot be decrypted: MAGNET_SECRET_KEY changed since it was saved"
        ) from exc


MASK_MIN_LENGTH = 12  # below this, even 4 characters are too large a share of the secret to show


def mask(secret: str | None) -> str | None:
    """Show enough of a secret to recognise it, never enough to use it: at most its last 4 characters,
    and nothing of one shorter than MASK_MIN_LENGTH. The start is never shown: many keys share a
    provider prefix (sk-proj-...), which tells nothing but narrows a guess."""
    if not secret:
        return None
    if len(secret) < MASK_MIN_LENGTH:
        return "****"
    return f"****{secret[-4:]}"
