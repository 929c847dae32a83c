"""Search keys: the form of a name or MRN that prefix search compares.

Stored beside the original (Patient.mrn_key, family_key, given_key) and indexed,
so "starts with" is an index range scan on both SQLite and PostgreSQL instead of
a case-insensitive LIKE over every row.
"""

from __future__ import annotations

import unicodedata

# The largest code point: every key that starts with a prefix sorts below prefix + this.
_PREFIX_END = "\U0010ffff"


def search_key(text: str) -> str:
    """Case-folded, accents removed, spaces collapsed: ' Núñez  Ruiz' -> 'nunez ruiz'."""
    decomposed = unicodedata.normalize("NFKD", text or "")
    without_marks = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(without_marks.casefold().split())


def prefix_range(prefix: str) -> tuple[str, str]:
    """The half-open range [low, high) of keys that start with `prefix` (already a key)."""
    return prefix, prefix + _PREFIX_END
