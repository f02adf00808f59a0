"""What every fleet command shares: the store, the broker, and the exit statuses.

Resolution order, first found wins:

- store: the global option ``--db``, else ``$LANTERNA_DB``, else
  ``$LANTERNA_HOME/lanterna.db``, else the per-user default
  (lanterna.store.db.default_path). A path is SQLite; ``postgresql://user@host:port/db``
  (or ``postgres://``) is PostgreSQL (docs/store.md);
- broker: ``--broker``, else ``$LANTERNA_BROKER``, else ``broker`` in the config file;
- broker account: the URL's ``user[:password]``, else ``$LANTERNA_BROKER_USER`` /
  ``$LANTERNA_BROKER_PASSWORD``, else ``broker_user`` / ``broker_password`` in the
  config file (user defaults to ``controller``);
- the broker's CA, for an ``mqtts://`` broker: ``$LANTERNA_BROKER_CA``, else
  ``broker_ca`` in the config file (``lanterna broker config --tls`` puts its ``ca.crt``
  there). Every MQTT client of the controller verifies the broker against it and its
  host name; a TLS broker without a CA is refused (exit 5), never trusted blindly.

The config file is ``config.json`` beside the store (``$LANTERNA_HOME`` or the
per-user directory), 0600 when lanterna writes it. Passwords are never printed.

Nothing here knows click: the CLI (lanterna.cli) and any other front end build a Ctx and
call the library through it; errors are lanterna.errors exceptions with their exit status.
"""

from __future__ import annotations

import functools
import json
import os
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lanterna.broker.url import parse as parse_broker_url
from lanterna.errors import (
    EXIT_BROKER,
    EXIT_STORE,
    EXIT_UNKNOWN,
    LanternaError,
    malformed,
    unknown,
)
from lanterna.files import read_json_object, write_atomic
from lanterna.store.db import Store, StoreError, UnknownGroup, UnknownNode, default_path
from lanterna.store.pg import is_url


@dataclass(frozen=True)
class Broker:
    host: str
    port: int
    user: str
    password: str | None
    tls: bool = False
    ca: Path | None = None  # the broker's CA (PEM), for tls

    @property
    def url(self) -> str:
        """The URL without credentials: safe to print."""
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"

    def ca_file(self) -> Path:
        """The CA a TLS broker is verified against; LanternaError when none is given
        (exit 5, as for no broker) or the file named is not there (exit 4)."""
        if self.ca is None:
            raise LanternaError(
                f"broker {self.url}: TLS needs the broker's CA to verify it: set "
                "LANTERNA_BROKER_CA or 'broker_ca' in config.json (the ca.crt of "
                "`lanterna broker config --tls`)",
                EXIT_BROKER,
            )
        if not self.ca.is_file():
            raise malformed(f"broker {self.url}: CA file {self.ca}: not found")
        return self.ca

    def client(self, client_id: str, **kwargs: Any) -> Any:
        """A paho MQTT client (callback API 2) with this broker's credentials and TLS set;
        not connected yet. TLS verifies the broker's certificate against `ca` and its
        host name (paho's default: CERT_REQUIRED, hostname checked)."""
        import paho.mqtt.client as mqtt

        ca = self.ca_file() if self.tls else None
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, **kwargs)
        if self.password is not None:
            c.username_pw_set(self.user, self.password)
        if ca is not None:
            c.tls_set(ca_certs=str(ca))
        return c


@dataclass
class Ctx:
    db: Path | str | None = None
    broker_url: str | None = None
    _store: Store | None = None

    @property
    def target(self) -> Path | str:
        """The store: a SQLite path or a PostgreSQL URL."""
        t = self.db or os.environ.get("LANTERNA_DB") or default_path()
        return t if is_url(t) else Path(t)

    @property
    def home(self) -> Path:
        """Where config.json is: beside a SQLite store; for a PostgreSQL one, the
        directory a SQLite store would have ($LANTERNA_HOME, else per user)."""
        t = self.target
        return default_path().parent if is_url(t) else Path(t).parent

    def config(self) -> dict[str, Any]:
        try:
            return read_json_object(self.home / "config.json")
        except ValueError as e:
            raise malformed(str(e)) from None

    def store(self) -> Store:
        if self._store is None:
            try:
                self._store = Store(self.target)
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
        u = parse_broker_url(url)
        user = u.user or os.environ.get("LANTERNA_BROKER_USER") or cfg.get("broker_user")
        password = (
            u.password or os.environ.get("LANTERNA_BROKER_PASSWORD") or cfg.get("broker_password")
        )
        return Broker(u.host, u.port, user or "controller", password, u.tls, self.broker_ca())

    def broker_ca(self) -> Path | None:
        """The broker's CA file: $LANTERNA_BROKER_CA, else broker_ca in config.json."""
        ca = os.environ.get("LANTERNA_BROKER_CA") or self.config().get("broker_ca")
        return Path(ca) if ca else None

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None


def write_config(home: Path, values: dict[str, Any]) -> Path:
    """Merge `values` into config.json under `home`, written 0600 (it holds a password).
    A config.json that is not a JSON object is refused (exit 4), never overwritten."""
    p = home / "config.json"
    home.mkdir(parents=True, exist_ok=True)
    try:
        cfg = read_json_object(p)
    except ValueError as e:
        raise malformed(str(e)) from None
    cfg.update(values)
    write_atomic(p, json.dumps(cfg, indent=1, sort_keys=True).encode(), 0o600)
    return p


def store_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The store's failures as LanternaErrors: unknown names exit 3, the rest 6."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (UnknownNode, UnknownGroup) as e:
            raise unknown(e) from None
        except StoreError as e:
            msg = str(e)
            code = EXIT_UNKNOWN if msg.startswith("unknown ") else EXIT_STORE
            raise LanternaError(msg, code) from None
        except sqlite3.Error as e:
            # PostgreSQL's errors are StoreError already (lanterna.store.pg), URL safe
            raise LanternaError(f"store: {e}", EXIT_STORE) from None

    return wrapper
