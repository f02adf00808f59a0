"""The store's schema as numbered migrations, applied in order, each in its own
transaction (lanterna.store.db.Store._migrate). A migration is never edited once
released: a change is a new one at the end, so every old store comes up to date.
"""

from __future__ import annotations

MIGRATIONS: tuple[str, ...] = (
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
)


def statements(script: str) -> list[str]:
    """A migration script split into statements (no semicolons inside our statements)."""
    out = []
    for part in script.split(";"):
        lines = [ln.split("--", 1)[0] for ln in part.splitlines()]
        stmt = "\n".join(ln for ln in lines if ln.strip())
        if stmt.strip():
            out.append(stmt)
    return out
