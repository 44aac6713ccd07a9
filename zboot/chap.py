"""CHAP credentials: a value both the target engines and the boot scripts
carry, so it belongs to neither."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Chap:
    """CHAP for one target: the initiator proves itself with user/secret; with
    mutual CHAP the target proves itself back with mutual_user/mutual_secret."""

    user: str
    secret: str = field(repr=False)
    mutual_user: str | None = None
    mutual_secret: str | None = field(default=None, repr=False)


def digest(chap: Chap | None) -> str:
    """A digest of CHAP credentials: two copies (a target's, a secret file's)
    compare by it, and neither is shown. "" for no CHAP."""
    if chap is None:
        return ""
    text = json.dumps([chap.user, chap.secret, chap.mutual_user, chap.mutual_secret])
    return hashlib.sha256(text.encode()).hexdigest()
