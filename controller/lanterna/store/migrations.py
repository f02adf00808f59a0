"""The store's schema as numbered migrations, applied in order, each in its own
transaction (lanterna.store.db.Store._migrate). A migration is never edited once
released: a change is a new one at the end, so every old store comes up to date.

One list for both backends. A migration is SQL text that both run (the DDL of 1 and 2 is
written in SQLite's types and ``pg_ddl`` gives PostgreSQL its own: REAL is float4 there,
so every REAL becomes DOUBLE PRECISION), or a ``{backend: text or function}`` where the
two must differ; a function gets the backend's connection and runs inside the
migration's transaction. SQLite counts versions in ``PRAGMA user_version``, PostgreSQL in
the one-row table ``schema_version``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

Step = str | Callable[[Any], None]
Migration = str | dict[str, Step]

MIGRATIONS: tuple[Migration, ...] = (
    # 1: the fleet, what it said, what was done to it
    """
    CREATE TABLE sites (
        name TEXT PRIMARY KEY,
        lat REAL NOT NULL,
        lon REAL NOT NULL,
        tz TEXT NOT NULL            -- IANA name
    );
    CREATE TABLE nodes (
        id TEXT PRIMARY KEY,
        site TEXT NOT NULL REFERENCES sites(name),
        board TEXT NOT NULL,
        lat REAL,
        lon REAL,
        key_hex TEXT NOT NULL,      -- the command key (HMAC-SHA256), 64 hex digits
        rated_w REAL NOT NULL DEFAULT 50,
        coap_host TEXT,
        coap_port INTEGER,
        ctr INTEGER NOT NULL DEFAULT 0,  -- the last command counter used for this node
        added REAL NOT NULL
    );
    CREATE TABLE groups (
        name TEXT PRIMARY KEY,
        description TEXT NOT NULL DEFAULT ''
    );
    CREATE TABLE group_members (
        grp TEXT NOT NULL REFERENCES groups(name) ON DELETE CASCADE,
        node TEXT NOT NULL REFERENCES nodes(id) ON DELETE CASCADE,
        PRIMARY KEY (grp, node)
    );
    -- the latest of everything a node says: one row per node
    CREATE TABLE node_status (
        node TEXT PRIMARY KEY,
        online INTEGER,
        status_at REAL,
        state TEXT,                 -- the last state payload (JSON)
        state_at REAL,
        tele TEXT,                  -- the last tele payload (JSON)
        last_seen REAL
    );
    CREATE TABLE telemetry (
        id INTEGER PRIMARY KEY,
        node TEXT NOT NULL,
        ts REAL NOT NULL,           -- the node's time (epoch s)
        received REAL NOT NULL,
        level INTEGER,
        kwh REAL,                   -- the lamp's energy counter
        power_w REAL,
        payload TEXT NOT NULL
    );
    -- a node sends one telemetry per period: a redelivered message is the same row
    CREATE UNIQUE INDEX telemetry_node_ts ON telemetry(node, ts);
    CREATE TABLE events (
        id INTEGER PRIMARY KEY,
        node TEXT NOT NULL,
        ts REAL NOT NULL,
        received REAL NOT NULL,
        event TEXT NOT NULL,
        payload TEXT NOT NULL
    );
    CREATE INDEX events_node_ts ON events(node, ts);
    CREATE TABLE commands (
        id TEXT PRIMARY KEY,        -- the envelope's id
        node TEXT NOT NULL,
        ctr INTEGER NOT NULL,
        cmd TEXT NOT NULL,
        args TEXT NOT NULL,         -- JSON
        via TEXT NOT NULL,          -- mqtt | coap
        sent REAL NOT NULL,
        status TEXT NOT NULL,       -- pending | ok | error | timeout
        result TEXT,                -- JSON: the ack's result, or its error and detail
        acked REAL
    );
    CREATE INDEX commands_node ON commands(node, sent);
    CREATE TABLE schedules (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL,
        version INTEGER NOT NULL,
        sha256 TEXT NOT NULL,
        body TEXT NOT NULL,
        created REAL NOT NULL,
        UNIQUE (name, version)
    );
    CREATE TABLE schedule_pushes (
        schedule INTEGER NOT NULL REFERENCES schedules(id),
        node TEXT NOT NULL,
        command TEXT NOT NULL,      -- commands.id
        PRIMARY KEY (schedule, node, command)
    );
    """,
    # 2: firmware rollouts (lanterna.ota.rollout)
    """
    CREATE TABLE rollouts (
        id INTEGER PRIMARY KEY,
        bundle TEXT NOT NULL,           -- the bundle file, as given
        bundle_id TEXT NOT NULL,        -- sha256 of its manifest: what nodes are offered
        version TEXT NOT NULL,
        size INTEGER NOT NULL,
        target TEXT NOT NULL,           -- JSON: how the nodes were chosen
        plan TEXT NOT NULL,             -- JSON: canary, waves, max_failures, windows
        state TEXT NOT NULL,            -- running | paused | aborted | halted | done | refused
        detail TEXT,
        created REAL NOT NULL,
        updated REAL NOT NULL
    );
    CREATE TABLE rollout_nodes (
        rollout INTEGER NOT NULL REFERENCES rollouts(id) ON DELETE CASCADE,
        node TEXT NOT NULL,
        wave INTEGER NOT NULL,
        state TEXT NOT NULL,            -- pending | offered | downloading | installing
                                        -- | trial | done | failed | refused
        progress INTEGER,
        result INTEGER,                 -- LwM2M Update Result, as the node reported it
        detail TEXT,
        from_version TEXT,
        since REAL,                     -- when it entered this state
        updated REAL,
        PRIMARY KEY (rollout, node)
    );
    """,
    # 3: a redelivered event is the same row (the ingest workers may receive a message
    # again after one is killed): events get the natural key (node, ts, event); the
    # duplicates an older store holds go first (the oldest row of each key stays).
    """
    DELETE FROM events WHERE id NOT IN (SELECT MIN(id) FROM events GROUP BY node, ts, event);
    DROP INDEX events_node_ts;
    CREATE UNIQUE INDEX events_node_ts_event ON events(node, ts, event)
    """,
    # 4: city scale. Telemetry keeps in columns what the readers use (level, kWh, power,
    # heap) and only the rest of the payload, compressed (lanterna.store.tele); on
    # PostgreSQL it is partitioned by day (partitions made as ingest sees the days, and
    # dropped whole by retention). node_status keeps what the fleet views show as
    # columns instead of the whole last tele (the view read 250,000 JSON documents).
    # Settings hold the retention. The functions are lanterna.store.db's (they need the
    # payload codec).
    {"sqlite": "migrate_4_sqlite", "postgresql": "migrate_4_postgresql"},
    # 5: the city platform's outbox (lanterna.bridge.outbox): per platform (`target`: its
    # URL and tenant), the attributes of an entity waiting to be sent, one row per
    # attribute (a newer value replaces the one waiting), and a digest of what the
    # platform last took or refused, so a sync queues only what changed.
    """
    CREATE TABLE ngsi_outbox (
        target TEXT NOT NULL,
        entity TEXT NOT NULL,
        etype TEXT NOT NULL,
        attr TEXT NOT NULL,
        body TEXT NOT NULL,          -- the attribute, normalized NGSI-LD (JSON)
        digest TEXT NOT NULL,        -- sha256 of body, first 16 bytes in hex
        queued REAL NOT NULL,
        tries INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (target, entity, attr)
    );
    CREATE TABLE ngsi_sent (
        target TEXT NOT NULL,
        entity TEXT NOT NULL,
        attr TEXT NOT NULL,
        digest TEXT NOT NULL,
        outcome TEXT NOT NULL,       -- 'sent', or 'refused' (a 4xx: not retried until it changes)
        at REAL NOT NULL,
        PRIMARY KEY (target, entity, attr)
    );
    CREATE TABLE ngsi_marks (
        target TEXT PRIMARY KEY,
        seen REAL NOT NULL,          -- node_status.last_seen the last sync read up to
        full_at REAL NOT NULL        -- when the last full sync ran
    )
    """,
    # 6: who may do what, and what was done (lanterna.operators, lanterna.audit): the
    # console's operators with their role and password hash (scrypt, never the password),
    # an audit record of every command from the console and the CLI, and who acknowledged
    # which fault of which node.
    """
    CREATE TABLE operators (
        name TEXT PRIMARY KEY,
        role TEXT NOT NULL,          -- viewer | operator | admin
        hash TEXT NOT NULL,          -- scrypt$n$r$p$salt_hex$key_hex
        created REAL NOT NULL,
        changed REAL NOT NULL
    );
    CREATE TABLE audit (
        id INTEGER PRIMARY KEY,
        at REAL NOT NULL,
        who TEXT NOT NULL,           -- an operator (web), the OS user (cli)
        via TEXT NOT NULL,           -- web | cli
        action TEXT NOT NULL,        -- dim, schedule, rollout.pause, user.add, ...
        target TEXT NOT NULL,        -- 'node greenwich-004', 'site milan', 'rollout 3'
        nodes TEXT NOT NULL,         -- JSON: the node ids
        args TEXT NOT NULL,          -- JSON: the arguments, never a secret
        result TEXT NOT NULL,        -- '3 of 3 ok', '1 of 3 ok, 2 timeout', 'paused'
        detail TEXT
    );
    CREATE INDEX audit_at ON audit(at);
    CREATE TABLE fault_acks (
        node TEXT NOT NULL,
        fault TEXT NOT NULL,
        by_whom TEXT NOT NULL,
        at REAL NOT NULL,
        PRIMARY KEY (node, fault)
    )
    """,
    # 7: the TALQ gateway (lanterna.talq, docs/talq.md): what a CMS wrote, as it wrote it;
    # the last override of each node; the loggers' entries until a report takes them; the
    # requests to the CMS until it takes them (nothing lost across an outage)
    """
    CREATE TABLE talq_objects (
        kind TEXT NOT NULL,          -- calendar | program | logger | group
        id TEXT NOT NULL,
        body TEXT NOT NULL,          -- JSON, as the CMS sent it
        changed REAL NOT NULL,
        PRIMARY KEY (kind, id)
    );
    CREATE TABLE talq_assign (
        node TEXT PRIMARY KEY,       -- its lamp actuator's calendarID
        calendar TEXT NOT NULL,
        schedule INTEGER,            -- schedules.id of the translation pushed
        result TEXT,                 -- ok, or why the push failed
        at REAL NOT NULL
    );
    CREATE TABLE talq_overrides (
        node TEXT PRIMARY KEY,
        command TEXT NOT NULL,       -- JSON: the TALQ Command (targetLightCommand)
        at REAL NOT NULL,
        cid TEXT,                    -- commands.id of the dim that carried it
        feedback TEXT,               -- JSON: the Command in effect as the node acked it
        result TEXT
    );
    CREATE TABLE talq_log (
        id INTEGER PRIMARY KEY,
        logger TEXT NOT NULL,
        entry TEXT NOT NULL,         -- JSON: one LogReport entry
        at REAL NOT NULL
    );
    CREATE INDEX talq_log_logger ON talq_log(logger, id);
    CREATE TABLE talq_marks (
        logger TEXT PRIMARY KEY,
        events_after INTEGER NOT NULL,   -- events.id recorded up to
        sampled REAL,                    -- the last periodic sample's instant
        reported REAL                    -- the last report's
    );
    CREATE TABLE talq_outbox (
        id INTEGER PRIMARY KEY,
        cms TEXT NOT NULL,           -- the CMS's base URI
        method TEXT NOT NULL,
        path TEXT NOT NULL,
        body TEXT NOT NULL,          -- JSON
        queued REAL NOT NULL,
        tries INTEGER NOT NULL DEFAULT 0
    )
    """,
)

# SQLite's DDL -> PostgreSQL's. Only what migrations 1 and 2 use: a rowid key becomes an
# identity column, REAL (float4 on PostgreSQL) double precision, BLOB bytea.
_PG_TYPES = (
    (re.compile(r"\bINTEGER PRIMARY KEY\b"), "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"),
    (re.compile(r"\bREAL\b"), "DOUBLE PRECISION"),
    (re.compile(r"\bBLOB\b"), "BYTEA"),
)


def pg_ddl(stmt: str) -> str:
    for pat, repl in _PG_TYPES:
        stmt = pat.sub(repl, stmt)
    return stmt


def steps(m: Migration, backend: str) -> list[Step]:
    """What a migration runs on `backend`: statements, or a function's name resolved by
    the caller (a str naming a function starts with ``migrate_``)."""
    step: Step = m[backend] if isinstance(m, dict) else m
    if callable(step) or step.startswith("migrate_"):
        return [step]
    out = statements(step)
    return [pg_ddl(s) for s in out] if backend == "postgresql" else list(out)


def statements(script: str) -> list[str]:
    """A migration script split into statements (no semicolons inside our statements)."""
    out = []
    for part in script.split(";"):
        lines = [ln.split("--", 1)[0] for ln in part.splitlines()]
        stmt = "\n".join(ln for ln in lines if ln.strip())
        if stmt.strip():
            out.append(stmt)
    return out
