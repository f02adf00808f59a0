"""What every fleet command shares: the store, the broker, and the exit statuses.

Resolution order, first found wins:

- store: the global option ``--db``, else ``$LANTERNA_HOME/lanterna.db``, else the
  per-user default (lanterna.store.db.default_path);
- broker: ``--broker``, else ``$LANTERNA_BROKER``, else ``broker`` in the config file;
- broker account: the URL's ``user[:password]``, else ``$LANTERNA_BROKER_USER`` /
  ``$LANTERNA_BROKER_PASSWORD``, else ``broker_user`` / ``broker_password`` in the
  config file (user defaults to ``controller``).

The config file is ``config.json`` beside the store (``$LANTERNA_HOME`` or the
per-user directory), 0600 when lanterna writes it. Passwords are never printed.

Exit statuses (README, "Exit statuses"): 0 all done; 1 a node failed or timed out;
2 usage (click); 3 unknown node, group or site; 4 malformed input; 5 broker
unreachable or refused; 6 store error.
"""

from __future__ import annotations

import json
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import click

from lanterna.files import read_json_object, write_atomic
from lanterna.store.db import Store, StoreError, UnknownGroup, UnknownNode, default_path

EXIT_FAILED = 1
EXIT_UNKNOWN = 3
EXIT_MALFORMED = 4
EXIT_BROKER = 5
EXIT_STORE = 6


class LanternaError(click.ClickException):
    """One clear line on stderr and a distinct exit status."""

    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.exit_code = code  # type: ignore[misc]  # click declares it on the class


def unknown(e: Exception) -> LanternaError:
    return LanternaError(str(e), EXIT_UNKNOWN)


def malformed(message: str) -> LanternaError:
    return LanternaError(message, EXIT_MALFORMED)


@dataclass(frozen=True)
class Broker:
    host: str
    port: int
    user: str
    password: str | None
    tls: bool = False

    @property
    def url(self) -> str:
        """The URL without credentials: safe to print."""
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"

    def client(self, client_id: str, **kwargs: Any) -> Any:
        """A paho MQTT client (callback API 2) with this broker's credentials and TLS set;
        not connected yet."""
        import paho.mqtt.client as mqtt

        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, **kwargs)
        if self.password is not None:
            c.username_pw_set(self.user, self.password)
        if self.tls:
            c.tls_set()
        return c


@dataclass
class Ctx:
    db: Path | None = None
    broker_url: str | None = None
    _store: Store | None = None

    @property
    def home(self) -> Path:
        return (self.db or default_path()).parent

    def config(self) -> dict[str, Any]:
        try:
            return read_json_object(self.home / "config.json")
        except ValueError as e:
            raise malformed(str(e)) from None

    def store(self) -> Store:
        if self._store is None:
            try:
                self._store = Store(self.db or default_path())
            except StoreError as e:
                raise LanternaError(f"store: {e}", EXIT_STORE) from None
        return self._store

    def broker(self) -> Broker:
        cfg = self.config()
        url = self.broker_url or os.environ.get("LANTERNA_BROKER") or cfg.get("broker")
        if not url:
            raise LanternaError(
                "no broker: give --broker mqtt://HOST:PORT, set LANTERNA_BROKER, or put "
                f"'broker' in {self.home / 'config.json'}",
                EXIT_BROKER,
            )
        u = urlparse(url)
        if u.scheme not in ("mqtt", "mqtts") or not u.hostname:
            raise malformed(f"broker: expected mqtt://HOST:PORT, got {u.scheme}://{u.hostname}")
        try:
            port = u.port or (8883 if u.scheme == "mqtts" else 1883)
        except ValueError:
            raise malformed("broker: the port is not a number") from None
        user = (
            unquote(u.username)
            if u.username
            else os.environ.get("LANTERNA_BROKER_USER") or cfg.get("broker_user") or "controller"
        )
        password = (
            unquote(u.password)
            if u.password
            else os.environ.get("LANTERNA_BROKER_PASSWORD") or cfg.get("broker_password")
        )
        return Broker(u.hostname, port, user, password, u.scheme == "mqtts")

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None


def write_config(home: Path, values: dict[str, Any]) -> Path:
    """Merge `values` into config.json under `home`, written 0600 (it holds a password)."""
    p = home / "config.json"
    home.mkdir(parents=True, exist_ok=True)
    cfg = json.loads(p.read_text()) if p.exists() else {}
    cfg.update(values)
    write_atomic(p, json.dumps(cfg, indent=1, sort_keys=True).encode(), 0o600)
    return p


pass_ctx = click.make_pass_decorator(Ctx)


def store_errors(fn):
    """Turn the store's unknown-name errors into exit status 3 with one line."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (UnknownNode, UnknownGroup) as e:
            raise unknown(e) from None
        except StoreError as e:
            msg = str(e)
            code = EXIT_UNKNOWN if msg.startswith("unknown ") else EXIT_STORE
            raise LanternaError(msg, code) from None
        except sqlite3.Error as e:
            raise LanternaError(f"store: {e}", EXIT_STORE) from None

    return wrapper
