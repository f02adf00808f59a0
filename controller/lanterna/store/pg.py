"""The PostgreSQL connection of the store (psycopg 3), shaped like sqlite3's.

``Store`` writes its SQL once, with ``?`` placeholders, and runs it on either backend:
``PgConn.execute`` turns the placeholders into psycopg's (outside quoted literals), and
rows come back as ``Row``: a dict (``r["col"]``, ``dict(r)``) that also answers
``r[0]``, as sqlite3.Row does, so callers read both backends alike.

The connection is in autocommit: the store's ``tx()`` opens and ends its transactions
itself (BEGIN ... COMMIT), as it does on SQLite. psycopg's errors become StoreError
naming the database by its URL without the password (``safe_url``).

A URL may carry a password: it is kept in this process only (``remember``), so the
URL that is printed, logged or handed on (``serve`` gives its ingest worker the
store's ``path``) never holds it; libpq's PGPASSWORD and ~/.pgpass work as usual.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterator, Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from lanterna.store.errors import PgError

SCHEMES = ("postgresql://", "postgres://")
_SECRETS: dict[str, str] = {}


def is_url(target: object) -> bool:
    s = str(target)
    # pathlib collapses '//': a URL that went through a Path arrives as 'postgresql:/...'
    return s.startswith(SCHEMES) or s.startswith(("postgresql:/", "postgres:/"))


def normalise(target: object) -> str:
    s = str(target)
    for scheme in ("postgresql:", "postgres:"):
        if s.startswith(scheme) and not s.startswith(scheme + "//"):
            s = scheme + "/" + s[len(scheme) :]
    return s


def safe_url(url: str) -> str:
    """The URL without its password: what may be printed."""
    try:
        u = urlsplit(url)
    except ValueError:
        return "postgresql://?"
    if u.password is None:
        return url
    host = u.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{u.username or ''}@{host}" + (f":{u.port}" if u.port else "")
    return urlunsplit((u.scheme, netloc, u.path, u.query, u.fragment))


def remember(url: str) -> str:
    """The safe form of `url`; its password kept for this process's later connects."""
    safe = safe_url(url)
    if safe != url:
        _SECRETS[safe] = url
    return safe


def secret(safe: str) -> str:
    return _SECRETS.get(safe, safe)


class Row(dict[str, Any]):
    """A row by name and by position."""

    __slots__ = ("_v",)
    _v: tuple[Any, ...]

    def __getitem__(self, k: Any) -> Any:
        if isinstance(k, int):
            return self._v[k]
        return dict.__getitem__(self, k)


def _row_factory(cursor: Any) -> Any:
    desc = cursor.description
    names = [c.name for c in desc] if desc else []

    def make(values: Sequence[Any]) -> Row:
        r = Row(zip(names, values, strict=True))
        r._v = tuple(values)
        return r

    return make


# A '?' outside single-quoted literals; a literal '%' must be doubled for psycopg.
_TOKEN = re.compile(r"'(?:[^']|'')*'|\?|%")


def placeholders(sql: str) -> str:
    def sub(m: re.Match[str]) -> str:
        t = m.group(0)
        if t == "?":
            return "%s"
        if t == "%":
            return "%%"
        return t.replace("%", "%%")

    return _TOKEN.sub(sub, sql)


class PgCursor:
    def __init__(self, cur: Any) -> None:
        self.cur = cur

    @property
    def rowcount(self) -> int:
        return int(self.cur.rowcount)

    def fetchone(self) -> Row | None:
        return self.cur.fetchone() if self.cur.description else None

    def fetchall(self) -> list[Row]:
        return list(self.cur.fetchall()) if self.cur.description else []

    def __iter__(self) -> Iterator[Row]:
        return iter(self.fetchall())


class PgConn:
    def __init__(self, url: str) -> None:
        import psycopg

        self.safe = safe_url(url)
        self.psycopg = psycopg
        try:
            self.conn = psycopg.connect(
                secret(url) if url == self.safe else url,
                autocommit=True,
                row_factory=_row_factory,
                connect_timeout=10,
                application_name="lanterna",
            )
        except psycopg.Error as e:
            raise PgError(_message(e, self.safe), getattr(e, "sqlstate", None)) from None
        self._sql: dict[str, str] = {}
        self._stages: dict[str, list[int]] = {}  # temporary staging tables: column types

    def _q(self, sql: str) -> str:
        q = self._sql.get(sql)
        if q is None:
            q = self._sql[sql] = placeholders(sql)
        return q

    def execute(self, sql: str, args: Sequence[Any] = ()) -> PgCursor:
        if sql == "ROLLBACK":
            self._stages.clear()  # a staging table made in this transaction is gone with it
        try:
            return PgCursor(self.conn.execute(self._q(sql), tuple(args) or None))
        except self.psycopg.Error as e:
            raise PgError(_message(e, self.safe), e.sqlstate) from None

    def tuples(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Rows as plain tuples (no Row per row: for the views of a whole fleet)."""
        from psycopg.rows import tuple_row

        try:
            cur = self.conn.cursor(row_factory=tuple_row)
            return cur.execute(self._q(sql), tuple(args) or None).fetchall()
        except self.psycopg.Error as e:
            raise PgError(_message(e, self.safe), e.sqlstate) from None

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> PgCursor:
        try:
            cur = self.conn.cursor()
            cur.executemany(self._q(sql), [tuple(r) for r in rows])
            return PgCursor(cur)
        except self.psycopg.Error as e:
            raise PgError(_message(e, self.safe), e.sqlstate) from None

    def insert_select(
        self, table: str, cols: Sequence[str], rows: Sequence[Sequence[Any]], tail: str, order: str
    ) -> int:
        """INSERT INTO table (cols) SELECT ... FROM the rows ORDER BY `order` `tail` (an ON
        CONFLICT clause); -> the rows the insert reports. The rows travel by COPY into a
        temporary table of the same columns, emptied at commit: one statement whatever
        their number, where a multi-row VALUES of 4,000 placeholders costs psycopg 60 us a
        row to parse and bind (bench/bench_ingest.py pg:1: serve's CPU 40.7 -> 20.7 us a
        message, binary COPY included). Must run inside a transaction (Store.tx)."""
        stage = f"lanterna_stage_{zlib.crc32(' '.join([table, *cols]).encode()):08x}"
        names = ", ".join(cols)
        try:
            cur = self.conn.cursor()
            types = self._stages.get(stage)
            if types is None:
                cur.execute(
                    f"CREATE TEMP TABLE IF NOT EXISTS {stage} ON COMMIT DELETE ROWS AS"
                    f" SELECT {names} FROM {table} WITH NO DATA"
                )
                cur.execute(f"SELECT {names} FROM {stage} LIMIT 0")
                types = [c.type_code for c in cur.description or ()]
            with cur.copy(f"COPY {stage} ({names}) FROM STDIN (FORMAT BINARY)") as cp:
                cp.set_types(types)
                for r in rows:
                    cp.write_row(r)
            cur.execute(
                f"INSERT INTO {table} ({names}) SELECT {names} FROM {stage} ORDER BY {order} {tail}"
            )
            self._stages[stage] = types  # made, and kept: it outlives the transaction
            return int(cur.rowcount)
        except self.psycopg.Error as e:
            raise PgError(_message(e, self.safe), e.sqlstate) from None

    def close(self) -> None:
        self.conn.close()


def _message(e: Exception, safe: str) -> str:
    text = str(e).strip().splitlines()
    first = text[0] if text else type(e).__name__
    # libpq may quote the connection string in a connect error: never show a password
    first = re.sub(r"password=\S+", "password=***", first)
    return f"{safe}: {first}"
