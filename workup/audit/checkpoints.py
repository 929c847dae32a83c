"""The chain's head, anchored outside the database.

A superuser who deletes the newest audit rows leaves a shorter chain that still
verifies. So at each `seal_audit` the head (position, hash) is appended to a file
under AUDIT_CHECKPOINT_DIR, one JSON line per checkpoint, signed with an HMAC when
AUDIT_CHECKPOINT_KEY is set. `verify_audit` compares the chain with the newest
checkpoint: a chain that no longer reaches it, or reaches it with another hash,
lost or changed rows.

The file is opened for appending only; that the app cannot rewrite it is up to
the operator (another owner, `chattr +a`, a write-once share): docs/security.md.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import os
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.utils import timezone

from workup.models import AuditEvent

FILE_NAME = "audit-checkpoints.jsonl"
_TAIL_BYTES = 64 * 1024  # the newest line is within the last few hundred bytes


@dataclass(frozen=True)
class Checkpoint:
    at: str
    position: int
    hash: str
    signature: str = ""

    def payload(self) -> bytes:
        return f"{self.at}|{self.position}|{self.hash}".encode()


class CheckpointError(ValueError):
    """The checkpoint file is unreadable or its newest line is not signed as it should be."""


def checkpoint_file() -> Path | None:
    directory = settings.AUDIT_CHECKPOINT_DIR
    return Path(directory) / FILE_NAME if directory else None


def _sign(checkpoint: Checkpoint) -> str:
    key = settings.AUDIT_CHECKPOINT_KEY
    if not key:
        return ""
    return hmac.new(key.encode(), checkpoint.payload(), hashlib.sha256).hexdigest()


def append(position: int, head_hash: str) -> Checkpoint | None:
    """Write the head as the newest checkpoint (nothing if no directory is configured,
    or if the head has not moved since the last one)."""
    path = checkpoint_file()
    if path is None or position == 0:
        return None
    latest = newest()
    if latest is not None and latest.position == position and latest.hash == head_hash:
        return latest
    unsigned = Checkpoint(timezone.now().isoformat(), position, head_hash)
    checkpoint = dataclasses.replace(unsigned, signature=_sign(unsigned))
    line = json.dumps(dataclasses.asdict(checkpoint), sort_keys=True) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
    try:
        os.write(descriptor, line.encode())
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    return checkpoint


def newest() -> Checkpoint | None:
    """The last checkpoint in the file, its signature checked when a key is configured."""
    path = checkpoint_file()
    if path is None or not path.exists():
        return None
    with path.open("rb") as file:
        file.seek(max(0, path.stat().st_size - _TAIL_BYTES))
        lines = [line for line in file.read().splitlines() if line.strip()]
    if not lines:
        return None
    try:
        checkpoint = Checkpoint(**json.loads(lines[-1]))
    except (ValueError, TypeError) as error:
        raise CheckpointError(f"The newest line of {path} is not a checkpoint.") from error
    if settings.AUDIT_CHECKPOINT_KEY and not hmac.compare_digest(
        checkpoint.signature, _sign(checkpoint)
    ):
        raise CheckpointError(
            f"The newest checkpoint in {path} (position {checkpoint.position}) is not signed "
            "with AUDIT_CHECKPOINT_KEY: the file was edited, or the key changed."
        )
    return checkpoint


def disagreement(checkpoint: Checkpoint) -> str:
    """What is wrong with the chain compared with `checkpoint` ("" if it still holds)."""
    row = AuditEvent.objects.filter(position=checkpoint.position).values("hash").first()
    if row is None:
        head = (
            AuditEvent.objects.filter(position__isnull=False)
            .order_by("-position")
            .values_list("position", flat=True)
            .first()
        ) or 0
        return (
            f"the chain ends at position {head}, but the checkpoint of {checkpoint.at} "
            f"recorded position {checkpoint.position}: newest events were deleted"
        )
    if row["hash"] != checkpoint.hash:
        return (
            f"the event at position {checkpoint.position} does not have the hash the "
            f"checkpoint of {checkpoint.at} recorded: the chain was rewritten"
        )
    return ""
