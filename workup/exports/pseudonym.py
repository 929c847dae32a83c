"""Per-site pseudonyms: stable, and not reversible without the secret.

    key       = HMAC-SHA256(secret, "workup.exports.pseudonym|" + site code)
    pseudonym = site code + "-" + first 16 hex digits of HMAC-SHA256(key, "patient:" + patient id)

A site's key is derived from the secret and the site code, so one patient id
gives unrelated pseudonyms at two sites, and nobody can go from a pseudonym
back to the patient (or test a guess) without the secret. 16 hex digits are
64 bits: collisions are negligible below many millions of patients per site.
The secret is settings.EXPORT_PSEUDONYM_SECRET, else settings.SECRET_KEY
(policy.py): changing it changes every pseudonym. Pure: no settings read here.
"""

from __future__ import annotations

import hashlib
import hmac

PSEUDONYM_HEX_DIGITS = 16


def _site_key(secret: str, site_code: str) -> bytes:
    message = f"workup.exports.pseudonym|{site_code}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).digest()


def _token(secret: str, site_code: str, kind: str, object_id: int) -> str:
    digest = hmac.new(
        _site_key(secret, site_code), f"{kind}:{object_id}".encode(), hashlib.sha256
    ).hexdigest()
    return digest[:PSEUDONYM_HEX_DIGITS]


def patient_pseudonym(secret: str, site_code: str, patient_id: int) -> str:
    return f"{site_code}-{_token(secret, site_code, 'patient', patient_id)}"


def workup_pseudonym(secret: str, site_code: str, workup_id: int) -> str:
    """Tells a patient's workups apart in a pseudonymised export, without the database id."""
    return f"{site_code}-w-{_token(secret, site_code, 'workup', workup_id)}"
