"""The fleet's MQTT passwords: one per node, generated once and kept, never printed.

A node's broker password must be the one the node holds, so it is made once (by
``lanterna broker config`` today, by provisioning later) and then only read. Node
passwords live in ``credentials.json`` beside the store (0600); the controller's own
account is the ``broker_user`` / ``broker_password`` of ``config.json`` there, the place
every controller command already reads it (lanterna.context), so the broker and the CLI
cannot disagree about it. The city platform's read-only accounts (`broker config
--platform`) keep theirs in the same file, under ``platforms``: apart from the nodes, so
a platform's name can never be taken for a node's.

Every secret file is born 0600 under a temporary name and renamed into place: never
world-readable, not even for an instant, and a crash leaves the old file or the new one.
"""

from __future__ import annotations

import fcntl
import json
import secrets
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from lanterna.files import read_json_object, write_atomic

FILE_NAME = "credentials.json"
CONTROLLER_USER = "controller"
VERSION = 1
# 24 random bytes, 32 URL-safe characters: far beyond guessing, so the broker's hash needs
# no slow iteration count to protect it (lanterna.broker.config, "Hashing").
_PASSWORD_BYTES = 24


class CredentialsError(Exception):
    """A credentials file that exists but cannot be used (one line, no secret in it)."""


def new_password() -> str:
    return secrets.token_urlsafe(_PASSWORD_BYTES)


class Credentials:
    """Node MQTT passwords in `home`/credentials.json. Use as a context manager to hold
    the file's lock over several changes and write them once at the end:

        with Credentials(home) as creds:
            pw = creds.ensure("greenwich-001")
    """

    def __init__(self, home: Path) -> None:
        self.home = home
        self.path = home / FILE_NAME
        self._nodes: dict[str, dict[str, Any]] = {}
        self._platforms: dict[str, dict[str, Any]] = {}
        self._dirty = False
        self._lock: Any = None
        self._held = False
        self._load()

    # -- file ---------------------------------------------------------------------------

    def _load(self) -> None:
        if not self.path.exists():
            self._nodes, self._platforms = {}, {}
            return
        try:
            d = json.loads(self.path.read_text())
        except (OSError, ValueError) as e:
            # not str(e) of a JSON error: it quotes the text around the fault
            raise CredentialsError(
                f"{self.path}: not a credentials file ({type(e).__name__})"
            ) from None
        nodes = d.get("nodes") if isinstance(d, dict) else None
        # optional (files written before platform accounts have none)
        platforms = d.get("platforms", {}) if isinstance(d, dict) else None
        if (
            not isinstance(nodes, dict)
            or not isinstance(platforms, dict)
            or d.get("v") != VERSION
            or not all(
                isinstance(v, dict) and isinstance(v.get("mqtt_password"), str)
                for v in (*nodes.values(), *platforms.values())
            )
        ):
            raise CredentialsError(
                f'{self.path}: expected {{"v": {VERSION}, "nodes": '
                '{ID: {"mqtt_password": ...}}, "platforms": {NAME: {"mqtt_password": ...}}}'
            )
        self._nodes, self._platforms = nodes, platforms

    def save(self) -> None:
        if not self._dirty:
            return
        self.home.mkdir(mode=0o700, parents=True, exist_ok=True)
        d: dict[str, Any] = {"v": VERSION, "nodes": self._nodes}
        if self._platforms:
            d["platforms"] = self._platforms
        text = json.dumps(d, indent=1, sort_keys=True)
        write_atomic(self.path, (text + "\n").encode(), 0o600)
        self._dirty = False

    @contextmanager
    def _locked(self) -> Iterator[None]:
        # Reentrant: flock on a second descriptor of the same file would wait for us.
        if self._held:
            yield
            return
        self.home.mkdir(mode=0o700, parents=True, exist_ok=True)
        with open(self.home / f".{FILE_NAME}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            self._held = True
            try:
                yield
            finally:
                self._held = False

    def __enter__(self) -> Credentials:
        self._lock = self._locked()
        self._lock.__enter__()
        self._load()  # what another process wrote before we held the lock
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        try:
            if exc_type is None:
                self.save()
        finally:
            self._lock.__exit__(None, None, None)
            self._lock = None

    @contextmanager
    def _change(self) -> Iterator[None]:
        # Inside `with`: the caller holds the lock and saves at its end. Alone: lock,
        # re-read what other processes wrote, change, write.
        if self._lock is not None:
            yield
            self._dirty = True
            return
        with self._locked():
            self._load()
            yield
            self._dirty = True
            self.save()

    # -- nodes --------------------------------------------------------------------------

    def nodes(self) -> list[str]:
        return sorted(self._nodes)

    def get(self, node: str) -> str | None:
        """The node's MQTT password, or None when it has none yet."""
        entry = self._nodes.get(node)
        return entry["mqtt_password"] if entry else None

    def ensure(self, node: str) -> str:
        """The node's MQTT password, generated the first time and kept after."""
        pw = self.get(node)
        if pw is not None:
            return pw
        with self._change():
            pw = self.get(node)  # another process may have made it meanwhile
            if pw is None:
                pw = new_password()
                self._nodes[node] = {"mqtt_password": pw}
        return pw

    def put(self, node: str, password: str) -> str:
        """Set the node's password: a rotation, or one a node already holds (adopted from
        `lanterna sim`'s or provisioning's records)."""
        with self._change():
            self._nodes[node] = {"mqtt_password": password}
        return password

    def remove(self, node: str) -> None:
        with self._change():
            self._nodes.pop(node, None)

    # -- the city platform's read-only accounts ------------------------------------------

    def platform_password(self, name: str, rotate: bool = False) -> str:
        """The platform account's MQTT password, generated the first time (or anew with
        `rotate`) and kept after."""
        entry = self._platforms.get(name)
        if entry is not None and not rotate:
            return str(entry["mqtt_password"])
        with self._change():
            entry = self._platforms.get(name)  # another process may have made it meanwhile
            if entry is None or rotate:
                entry = self._platforms[name] = {"mqtt_password": new_password()}
        return str(entry["mqtt_password"])

    def keep_platforms(self, names: Sequence[str]) -> list[str]:
        """Forget the password of every platform account not in `names` (an account no
        longer configured leaves no secret behind) -> the names forgotten."""
        gone = sorted(set(self._platforms) - set(names))
        if gone:
            with self._change():
                for name in gone:
                    self._platforms.pop(name, None)
        return gone

    # -- the controller -----------------------------------------------------------------

    def controller_user(self) -> str:
        return str(self._config().get("broker_user") or CONTROLLER_USER)

    def controller_password(self, rotate: bool = False) -> str:
        """The controller's broker password from config.json, generated into it (0600)
        the first time, or anew with `rotate`."""
        pw = self._config().get("broker_password")
        if isinstance(pw, str) and pw and not rotate:
            return pw
        pw = new_password()
        # Merged into config.json here, under the credentials lock (context.write_config
        # writes the same way, without it).
        with self._locked():
            cfg = self._config()
            cfg["broker_password"] = pw
            text = json.dumps(cfg, indent=1, sort_keys=True)
            write_atomic(self.home / "config.json", text.encode(), 0o600)
        return pw

    def _config(self) -> dict[str, Any]:
        try:
            return read_json_object(self.home / "config.json")
        except ValueError as e:
            raise CredentialsError(str(e)) from None
