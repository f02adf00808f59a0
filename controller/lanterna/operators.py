"""The people who may drive the fleet from the web console, their roles, and their
passwords (the ``operators`` table of the store; migration 6).

Three roles, each able to do what the one below can: a viewer sees the fleet, an
operator also commands it (dim, identify, schedules, fault acknowledgements, pausing a
rollout), an admin also manages the operators. ``can(role, action)`` is the one place
that says who may do what; an action it does not know is refused to everyone.

Passwords are kept as scrypt hashes (RFC 7914; n=2**14, r=8, p=1, a 16-byte random
salt, a 32-byte key), stored as ``scrypt$n$r$p$salt_hex$key_hex`` so that a hash made
with other parameters still verifies. There is no default account: the first admin is
made with ``lanterna user add`` on the controller's machine. A password is never logged,
printed, or put in an exception. The SQL runs on both of the store's backends.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from typing import Any

from lanterna.errors import LanternaError, Unknown, malformed
from lanterna.store import Store

ROLES = ("viewer", "operator", "admin")

# action -> the lowest role that may do it; "head.*" covers every "head.<verb>"
ALLOWED: dict[str, str] = {
    "view": "viewer",
    "dim": "operator",
    "identify": "operator",
    "reboot": "operator",
    "schedule.push": "operator",
    "fault.ack": "operator",
    "rollout.pause": "operator",
    "rollout.resume": "operator",
    "rollout.abort": "operator",
    "rollout.start": "admin",
    "user.*": "admin",
}

NAME = re.compile(r"[a-z][a-z0-9._-]{1,31}")
MIN_PASSWORD = 12
MAX_PASSWORD = 1024  # scrypt takes any length; a bound keeps a request's cost bounded

SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
SALT_BYTES, KEY_BYTES = 16, 32
_MAX_N = 2**20  # the most a stored hash may ask for (1 GiB at r=8): beyond it, refused

# What an unknown name is checked against, so that a wrong name costs one scrypt as a
# wrong password does and the time taken does not tell which names exist. No password
# gives this key: compare_digest never matches it, and verify returns None regardless.
_DUMMY = f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${'00' * SALT_BYTES}${'00' * KEY_BYTES}"


def can(role: str | None, action: str) -> bool:
    """Whether `role` may do `action` (an unknown role or action: no)."""
    if role not in ROLES:
        return False
    need = ALLOWED.get(action) or ALLOWED.get(action.split(".", 1)[0] + ".*")
    return need is not None and ROLES.index(role) >= ROLES.index(need)


def check_name(name: str) -> str:
    if not NAME.fullmatch(name):
        raise malformed(
            f"operator name {name!r}: 2-32 characters, a lower-case letter first, then"
            " lower-case letters, digits, '.', '_' or '-'"
        )
    return name


def check_role(role: str) -> str:
    if role not in ROLES:
        raise malformed(f"role {role!r}: one of {', '.join(ROLES)}")
    return role


def check_password(password: str) -> str:
    # the message says what is wrong, never what was given
    if len(password) < MIN_PASSWORD:
        raise malformed(f"password: at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise malformed(f"password: at most {MAX_PASSWORD} characters")
    return password


def generate_password() -> str:
    """A random password of 20 URL-safe characters (120 bits)."""
    return secrets.token_urlsafe(15)


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int, dklen: int) -> bytes:
    return hashlib.scrypt(
        password.encode(), salt=salt, n=n, r=r, p=p, dklen=dklen, maxmem=129 * r * n * p + 2**20
    )


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(SALT_BYTES)
    key = _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P, KEY_BYTES)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${salt.hex()}${key.hex()}"


def password_matches(password: str, stored: str) -> bool:
    """Whether `password` gives `stored` (parameters read from it); a stored value that is
    not a well-formed scrypt hash matches nothing."""
    try:
        scheme, n_s, r_s, p_s, salt_hex, key_hex = stored.split("$")
        n, r, p = int(n_s), int(r_s), int(p_s)
        salt, key = bytes.fromhex(salt_hex), bytes.fromhex(key_hex)
    except ValueError:
        return False
    if scheme != "scrypt" or not (1 < n <= _MAX_N and n & (n - 1) == 0 and 0 < r * p <= 64):
        return False
    if not salt or not 16 <= len(key) <= 64:
        return False
    return hmac.compare_digest(_scrypt(password, salt, n, r, p, len(key)), key)


class Operators:
    """The ``operators`` table of the store."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.db = store.db

    def add(self, name: str, role: str, password: str) -> dict[str, Any]:
        check_name(name)
        check_role(role)
        check_password(password)
        self.check_free(name)  # before the hash: no scrypt for a taken name
        digest = hash_password(password)
        now = time.time()
        with self.store.tx() as db:
            row = db.execute(
                "INSERT INTO operators (name, role, hash, created, changed) VALUES (?,?,?,?,?)"
                " ON CONFLICT (name) DO NOTHING RETURNING name",
                (name, role, digest, now, now),
            ).fetchone()
        if row is None:  # added by another process in between
            raise _taken(name)
        return self.get(name)

    def set_password(self, name: str, password: str) -> None:
        check_password(password)
        self.get(name)  # unknown: exit 3, before the hash
        self._update(name, "hash=?", hash_password(password))

    def set_role(self, name: str, role: str) -> dict[str, Any]:
        check_role(role)
        with self.store.tx() as db:
            old = self._get(db, name)
            if old["role"] == "admin" and role != "admin":
                self._not_last_admin(db, name, f"make {name} {role}")
            db.execute(
                "UPDATE operators SET role=?, changed=? WHERE name=?", (role, time.time(), name)
            )
        return self.get(name)

    def remove(self, name: str) -> None:
        with self.store.tx() as db:
            old = self._get(db, name)
            if old["role"] == "admin":
                self._not_last_admin(db, name, f"remove {name}")
            db.execute("DELETE FROM operators WHERE name=?", (name,))

    def get(self, name: str) -> dict[str, Any]:
        return self._get(self.db, name)

    def exists(self, name: str) -> bool:
        return self._row(name) is not None

    def check_free(self, name: str) -> None:
        """Refuse (exit 1) a name that is taken."""
        if self.exists(name):
            raise _taken(name)

    def list(self) -> list[dict[str, Any]]:
        q = "SELECT name, role, created, changed FROM operators ORDER BY name"
        return [dict(r) for r in self.db.execute(q)]

    def count(self) -> int:
        return int(self.db.execute("SELECT count(*) FROM operators").fetchone()[0])

    def verify(self, name: str, password: str) -> str | None:
        """The operator's role when `password` is theirs, else None. Costs one scrypt
        whether or not the name exists."""
        row = self._row(name)
        stored = row["hash"] if row is not None else _DUMMY
        ok = password_matches(password[:MAX_PASSWORD], stored)
        return str(row["role"]) if ok and row is not None else None

    # -- inside ---------------------------------------------------------------------------

    def _row(self, name: str) -> Any:
        return self.db.execute("SELECT role, hash FROM operators WHERE name=?", (name,)).fetchone()

    @staticmethod
    def _get(db: Any, name: str) -> dict[str, Any]:
        r = db.execute(
            "SELECT name, role, created, changed FROM operators WHERE name=?", (name,)
        ).fetchone()
        if r is None:
            raise Unknown(f"unknown operator {name!r}")
        return dict(r)

    def _update(self, name: str, assign: str, value: Any) -> None:
        with self.store.tx() as db:
            cur = db.execute(
                f"UPDATE operators SET {assign}, changed=? WHERE name=?",
                (value, time.time(), name),
            )
            if cur.rowcount == 0:
                raise Unknown(f"unknown operator {name!r}")

    @staticmethod
    def _not_last_admin(db: Any, name: str, what: str) -> None:
        # the console must keep someone who can manage it
        n = db.execute(
            "SELECT count(*) FROM operators WHERE role='admin' AND name<>?", (name,)
        ).fetchone()[0]
        if int(n) == 0:
            raise LanternaError(f"cannot {what}: {name} is the last admin (add another first)")


def _taken(name: str) -> LanternaError:
    return LanternaError(f"operator {name} exists: `lanterna user passwd` changes it")
