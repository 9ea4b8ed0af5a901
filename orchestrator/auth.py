"""Bearer API keys: who may call, as which role, for which sources.

Keys are kept only as SHA-256 digests (API keys are long random strings, so a fast digest is
the right tool; there is nothing to brute-force). Keys come from ``CCTV_API_KEYS_FILE`` (YAML
or JSON: ``[{name, role, sources, key_sha256 | key}]``) and the bootstrap admin key
``CCTV_ADMIN_API_KEY``.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml

from orchestrator.domain.ids import validate_source
from orchestrator.errors import InvalidInput

ALL_SOURCES = "*"


class Role(StrEnum):
    VIEWER = "viewer"
    ADMIN = "admin"


@dataclass(frozen=True, slots=True)
class Principal:
    name: str
    role: Role
    sources: frozenset[str]

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN

    def may_act_for(self, source: str) -> bool:
        return self.is_admin or ALL_SOURCES in self.sources or source in self.sources


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    return "cctv_" + secrets.token_urlsafe(32)


class KeyRing:
    def __init__(self) -> None:
        self._by_digest: dict[str, Principal] = {}
        self._lengths: dict[str, int] = {}  # key name -> bytes, for keys given in clear

    def __len__(self) -> int:
        return len(self._by_digest)

    def add(self, key_sha256: str, principal: Principal) -> None:
        self._by_digest[key_sha256.lower()] = principal

    def add_key(self, key: str, principal: Principal) -> None:
        self.add(digest(key), principal)
        self._lengths[principal.name] = len(key.encode())

    def short_keys(self, min_bytes: int) -> list[str]:
        """Names of keys given in clear that are shorter than ``min_bytes`` (hashed ones are
        of unknown length)."""
        return sorted(name for name, size in self._lengths.items() if size < min_bytes)

    def authenticate(self, key: str) -> Principal | None:
        return self._by_digest.get(digest(key))

    def load_file(self, path: Path) -> int:
        text = path.read_text(encoding="utf-8")
        raw: Any = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
        entries = raw.get("keys", []) if isinstance(raw, dict) else raw
        if not isinstance(entries, list):
            raise InvalidInput(f"{path}: expected a list of keys")
        for entry in entries:
            self._load_entry(path, entry)
        return len(entries)

    def _load_entry(self, path: Path, entry: Any) -> None:
        if not isinstance(entry, dict) or "name" not in entry:
            raise InvalidInput(f"{path}: every key needs a name")
        try:
            role = Role(entry.get("role", "viewer"))
        except ValueError as exc:
            raise InvalidInput(
                f"{path}: key {entry['name']}: role must be viewer or admin"
            ) from exc
        sources = frozenset(
            s if s == ALL_SOURCES else validate_source(str(s)) for s in entry.get("sources", [])
        )
        principal = Principal(str(entry["name"]), role, sources)
        if "key_sha256" in entry:
            self.add(str(entry["key_sha256"]), principal)
        elif "key" in entry:
            self.add_key(str(entry["key"]), principal)
        else:
            raise InvalidInput(f"{path}: key {entry['name']} needs key_sha256 (or key)")


def dev_admin_key(data_dir: Path) -> str:
    """The development admin key of ``make run``: made once, kept in the data folder (0600)."""
    path = data_dir / "dev-admin.key"
    if path.exists():
        return path.read_text(encoding="utf-8").strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    key = new_key()
    path.touch(mode=0o600)
    path.write_text(key + "\n", encoding="utf-8")
    return key
