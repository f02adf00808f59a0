"""A mosquitto 2.0 configuration in which only the right devices can do the right things.

``generate()`` writes, into one directory:

- ``mosquitto.conf``: the listeners, no anonymous access, the password and ACL files,
  and the limits the fleet needs (below);
- ``passwd`` (0600): one account per node of the store and one for the controller,
  hashed in mosquitto's own ``$7$`` format (PBKDF2-SHA512), written here with hashlib;
- ``acl``: each node may publish only its own leaves under
  ``{prefix}/{site}/{node}/`` and read only its own ``cmd`` and ``ota/data``; the
  controller reads and writes the whole tree; a city platform's account (``platforms``)
  reads every node's ``status``, ``state``, ``tele`` and ``event`` and nothing else;
- with TLS: ``ca.crt`` / ``ca.key`` (0600), ``server.crt`` / ``server.key`` (0600)
  (lanterna.broker.tls).

Re-running changes nothing unless the fleet changed: passwords come from
lanterna.broker.credentials (made once, kept), a hash line is kept while it still matches its
password, and the CA and server certificate are kept while they are valid for the names
asked. ``rotate`` makes new passwords, a new CA and a new server certificate. No secret
is returned, logged or printed; docs/security.md says why each choice was made.
"""

from __future__ import annotations

import base64
import getpass
import hashlib
import hmac
import ipaddress
import math
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from lamp import numbers as N
from lamp.cmd.handler import MAX_BYTES
from lamp.config import SPEC as LAMP_SPEC
from lamp.net.link import SPEC as LINK_SPEC
from lanterna.broker.credentials import Credentials, new_password
from lanterna.broker.tls import (
    CA_CERT,
    CA_KEY,
    SERVER_CERT,
    SERVER_KEY,
    TlsError,
    check_hosts,
    ensure_ca,
    ensure_server,
    fresh,
)
from lanterna.files import write_atomic
from lanterna.ota.server import MAX_CHUNK
from lanterna.wire import topics as T

CONF, PASSWD, ACL = "mosquitto.conf", "passwd", "acl"

# What a node publishes (docs/protocol.md, "MQTT topics"; status is also its Last Will,
# which mosquitto checks against the same write rule) and what it reads.
NODE_WRITES = (N.STATUS, N.STATE, N.TELE, N.EVENT, N.ACK, N.OTA_REQ)
NODE_READS = (N.CMD, N.OTA_DATA)
# What the city platform reads of every node: the open telemetry feed (docs/protocol.md).
# Never cmd, ack or ota: commands and their answers are the controller's business.
PLATFORM_READS = (N.STATUS, N.STATE, N.TELE, N.EVENT)

# The largest payloads on the wire: a command (lamp.cmd.handler.MAX_BYTES, what a node
# accepts) and an OTA chunk (4-byte offset + up to MAX_CHUNK bytes, docs/ota.md).
MESSAGE_SIZE_LIMIT = max(MAX_BYTES, 4 + MAX_CHUNK)
# The whole packet: that payload plus the topic and MQTT headers, with room to spare. A
# larger packet disconnects its sender before the broker buffers it.
MAX_PACKET_SIZE = MESSAGE_SIZE_LIMIT + 1024
# The controller's ingest session: many messages in flight (mosquitto's default is 20)
# and a queue deep enough for the outage it must survive (below; the default is 1000).
MAX_INFLIGHT = 1000


# -- the ingest session's queue ---------------------------------------------------------
#
# While `lanterna serve` is down the broker queues what the fleet publishes for its
# session, up to `max_queued_messages`, then drops every new message silently (the oldest
# are kept). mosquitto 2.0 scopes that limit (and max_queued_bytes) only globally: one
# value for every client, not per listener or per client (mosquitto.conf(5), "This option
# applies globally"). That is harmless here: the nodes and the commander connect with a
# clean session (docs/mqtt.md), so the ingest sessions (one per serve worker) are the
# only ones that queue while away, and a limit only costs memory when it is used.
#
# Measured on mosquitto 2.0.11 (x86-64; 200,000 QoS 1 messages queued for an offline
# persistent session, the broker's RSS before and after): a queued message costs
# QUEUED_OVERHEAD bytes beyond its payload (482 B with a 100-byte payload, 786 B with 400
# bytes, 1,186 B with 800).
QUEUED_OVERHEAD = 385
TELE_BYTES = 400  # a node's telemetry message with one sensor (docs/protocol.md)
# state on every change and after each reconnect, events, status: on top of telemetry
HEADROOM = 1.2
# When the broker itself (or the network) is away the nodes keep what they publish in
# their bounded outbox instead (lamp.net.link: 64 messages, 8192 bytes): about 20
# telemetry messages, 20 minutes at the default period; older ones are dropped, counted in
# the node's `mqtt_dropped`.
OUTBOX_MESSAGES = min(
    cast(int, LINK_SPEC["outbox_count"][0]), cast(int, LINK_SPEC["outbox_bytes"][0]) // TELE_BYTES
)
# never below the queue the broker config had before it was sized from the fleet
QUEUE_FLOOR = 100_000
OUTAGE_S = 3600
# the node's default telemetry period and its range (lamp.config: default, lo, hi)
TELE_S = cast(int, LAMP_SPEC["tele_s"][0])
TELE_RANGE = cast(tuple[int, int], LAMP_SPEC["tele_s"][1:])


@dataclass(frozen=True)
class QueuePlan:
    """The ingest session's queue, sized from the fleet: what it holds and costs."""

    nodes: int
    tele_s: int
    outage_s: int
    max_queued: int

    @property
    def per_s(self) -> float:
        # messages per second the fleet sends the ingest session
        return self.nodes * HEADROOM / self.tele_s

    @property
    def memory_bytes(self) -> int:
        # the broker's memory with the queue full
        return self.max_queued * (QUEUED_OVERHEAD + TELE_BYTES)

    @property
    def survives_s(self) -> int:
        # how long serve may be away before the broker drops anything
        return int(self.max_queued / self.per_s) if self.per_s else 0

    def dropped(self, outage_s: float) -> int:
        """Messages the broker drops when serve is away `outage_s` seconds."""
        return max(0, int(outage_s * self.per_s) - self.max_queued)

    def as_json(self) -> dict[str, Any]:
        return {
            "nodes": self.nodes,
            "tele_s": self.tele_s,
            "outage_s": self.outage_s,
            "max_queued_messages": self.max_queued,
            "messages_per_s": round(self.per_s, 1),
            "survives_s": self.survives_s,
            "memory_bytes": self.memory_bytes,
            "dropped_per_extra_hour": int(3600 * self.per_s),
            "node_outbox_s": OUTBOX_MESSAGES * self.tele_s,
        }


def queue_plan(nodes: int, tele_s: int = TELE_S, outage_s: int = OUTAGE_S) -> QueuePlan:
    """nodes x telemetry rate x the outage (with HEADROOM for state and events), never
    below QUEUE_FLOOR."""
    if nodes < 0 or tele_s <= 0 or outage_s <= 0:
        raise ConfigError(f"queue: nodes {nodes}, tele_s {tele_s}, outage {outage_s} s")
    need = math.ceil(nodes * HEADROOM * outage_s / tele_s)
    return QueuePlan(nodes, tele_s, outage_s, max(need, QUEUE_FLOOR))


def queue_lines(q: QueuePlan) -> list[str]:
    """mosquitto.conf lines for the queue, with what it costs and what it drops."""
    mib = q.memory_bytes / 2**20
    return [
        f"# ingest session queue: {q.nodes} nodes, telemetry every {q.tele_s} s, "
        f"{q.outage_s} s of serve being away",
        f"# ({q.per_s:.1f} msg/s with {HEADROOM:g}x for state and events). Full, it costs the",
        f"# broker about {mib:.0f} MiB ({QUEUED_OVERHEAD} B + a {TELE_BYTES}-byte payload per "
        "message);",
        f"# a longer outage drops the newest messages, about {int(3600 * q.per_s)} per extra hour",
        "# ($SYS/broker/publish/messages/dropped, which `lanterna serve` reports). Global in",
        "# mosquitto 2.0: every persistent session gets this limit (nodes use clean ones).",
        f"# With the broker away, each node's outbox keeps about {OUTBOX_MESSAGES * q.tele_s // 60}"
        " minutes of telemetry.",
        f"max_queued_messages {q.max_queued}",
    ]


# mosquitto_passwd's own choices (2.0): 12 bytes of salt, 101 iterations of SHA-512.
# Every password here is 24 random bytes, beyond brute force whatever the iteration
# count, so the hash is there to keep the file free of passwords, not to slow guessing;
# more iterations would only cost the broker CPU on every reconnect storm.
_SALT_BYTES, _ITERATIONS, _DK_BYTES = 12, 101, 64

# Node and site names are topic levels and lines of the ACL and password files: no '/',
# wildcards, spaces, ':' or newlines (the same rule as `lanterna node add`).
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


class ConfigError(Exception):
    """Input the broker configuration cannot be built from (one line, no secret)."""


@dataclass(frozen=True)
class Options:
    out: Path
    port: int = 1883
    tls: bool = False
    tls_port: int = 8883
    plain_too: bool = False  # with tls: also a plain listener, on loopback only
    bind: str | None = None  # the network-facing listener's address; None: all
    hosts: tuple[str, ...] = ("localhost", "127.0.0.1")
    prefix: str = N.PREFIX
    run_as: str | None = None  # mosquitto's `user`; None: whoever runs this
    rotate: bool = False
    # the ingest queue: the outage it must survive; the fleet's size (None: the store's
    # nodes) and telemetry period
    outage_s: int = OUTAGE_S
    fleet: int | None = None
    tele_s: int = TELE_S
    # the city platform's read-only accounts: exactly these (others are removed)
    platforms: tuple[str, ...] = ()


@dataclass(frozen=True)
class Listener:
    port: int
    bind: str | None
    tls: bool

    def as_json(self) -> dict[str, Any]:
        return {"port": self.port, "bind": self.bind or "*", "tls": self.tls}


@dataclass
class Result:
    """What was written and where: paths, names and counts; never a secret."""

    out: Path
    files: dict[str, Path]
    listeners: list[Listener]
    nodes: list[str]
    controller_user: str
    credentials: Path
    changed: list[str] = field(default_factory=list)
    ca_fingerprint: str | None = None
    warnings: list[str] = field(default_factory=list)
    queue: QueuePlan | None = None
    platforms: list[str] = field(default_factory=list)
    removed_platforms: list[str] = field(default_factory=list)  # accounts and passwords gone
    prefix: str = N.PREFIX

    def platform_reads(self) -> list[str]:
        """The topic filters a platform account may subscribe to."""
        return platform_filters(self.prefix)

    def as_json(self) -> dict[str, Any]:
        return {
            "dir": str(self.out),
            "files": {k: str(v) for k, v in self.files.items()},
            "listeners": [x.as_json() for x in self.listeners],
            "nodes": self.nodes,
            "controller_user": self.controller_user,
            "credentials": str(self.credentials),
            "changed": self.changed,
            "ca_sha256": self.ca_fingerprint,
            "warnings": self.warnings,
            "queue": self.queue.as_json() if self.queue else None,
            # where each platform's password is, never the password
            "platforms": [
                {
                    "name": p,
                    "credentials": str(self.credentials),
                    "key": f"platforms.{p}.mqtt_password",
                    "reads": self.platform_reads(),
                }
                for p in self.platforms
            ],
            "removed_platforms": self.removed_platforms,
        }


# -- names ------------------------------------------------------------------------------


def check_name(kind: str, value: str) -> str:
    if not _NAME.fullmatch(value):
        raise ConfigError(
            f"{kind} {value!r}: cannot be a broker account or topic level (letters, "
            "digits, '.', '_', '-', up to 64)"
        )
    return value


def check_prefix(prefix: str) -> str:
    for level in prefix.split("/"):
        check_name("prefix level", level)
    return prefix


# -- password file ----------------------------------------------------------------------


def hash_password(password: str, salt: bytes | None = None, iterations: int = _ITERATIONS) -> str:
    """mosquitto's `$7$` hash: `$7$<iterations>$<b64 salt>$<b64 PBKDF2-SHA512>`."""
    salt = salt if salt is not None else secrets.token_bytes(_SALT_BYTES)
    dk = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations, _DK_BYTES)
    b64 = base64.b64encode
    return f"$7${iterations}${b64(salt).decode()}${b64(dk).decode()}"


def check_password(hashed: str, password: str) -> bool:
    """Whether `hashed` (a `$7$` hash) is the hash of `password`."""
    parts = hashed.split("$")
    if len(parts) != 5 or parts[1] != "7" or not parts[2].isdigit():
        return False
    try:
        salt, dk = base64.b64decode(parts[3]), base64.b64decode(parts[4])
    except ValueError:
        return False
    got = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, int(parts[2]), len(dk))
    return hmac.compare_digest(got, dk)


def passwd_text(accounts: dict[str, str], old: str = "") -> str:
    """The password file for `accounts` (user -> password), in sorted order; a line of
    `old` whose hash still matches is kept, so a re-run rewrites nothing."""
    kept = {}
    for line in old.splitlines():
        user, sep, hashed = line.partition(":")
        if sep and user in accounts and check_password(hashed, accounts[user]):
            kept[user] = hashed
    lines = [f"{u}:{kept.get(u) or hash_password(pw)}" for u, pw in sorted(accounts.items())]
    return "\n".join(lines) + "\n"


# -- ACL --------------------------------------------------------------------------------


def platform_filters(prefix: str = N.PREFIX) -> list[str]:
    """What a platform account reads: PLATFORM_READS of every node of every site."""
    return [T.fleet_filter(prefix, leaf) for leaf in PLATFORM_READS]


def acl_text(
    nodes: Sequence[tuple[str, str]],
    controller: str,
    prefix: str = N.PREFIX,
    platforms: Sequence[str] = (),
) -> str:
    """One `user` block per node with its exact topics, site included; one per platform
    account with `topic read` of platform_filters() only (no write line: it publishes
    nothing, its Last Will included).

    Not `pattern` lines with %u: the site is a topic level but not part of the username,
    so a pattern would need `+` for it, and a node could then publish under another
    site's tree with its own id (lanterna/v1/other-site/<node>/state), which the
    controller would file under that site. Explicit blocks cost a line per topic per
    node (8 per node: ~80 KB for 1000 nodes, read once and on SIGHUP) and a re-run of
    `lanterna broker config` when a node is added or moves site.
    """
    root = prefix.split("/")[0]
    out = [
        "# Generated by `lanterna broker config`; re-run it when nodes change, then send",
        "# the broker SIGHUP. mosquitto 2.0: `read` governs what a subscriber receives",
        "# (it grants every SUBSCRIBE and checks each message as it delivers it), `write`",
        "# what a client may publish (its Last Will too).",
        "# Nothing is granted above the first `user` line: anonymous clients get nothing.",
        "",
        f"user {controller}",
        f"topic readwrite {root}/#",
        # what the broker dropped for a full queue: `lanterna serve` reports it
        "topic read $SYS/broker/publish/messages/dropped",
    ]
    for p in platforms:
        out += ["", f"user {p}"]
        out += [f"topic read {f}" for f in platform_filters(prefix)]
    for node, site in nodes:
        base = T.node_topic(prefix, site, node, "").rstrip("/")
        out += ["", f"user {node}"]
        out += [f"topic write {base}/{leaf}" for leaf in NODE_WRITES]
        out += [f"topic read {base}/{leaf}" for leaf in NODE_READS]
    return "\n".join(out) + "\n"


# -- mosquitto.conf ---------------------------------------------------------------------


def listeners(o: Options) -> list[Listener]:
    """Plain on `port` without TLS. With TLS, TLS only: a plain listener would carry
    every password in clear (docs/security.md); `plain_too` adds one on loopback, for a
    controller or a virtual district on the broker's own machine."""
    if not o.tls:
        return [Listener(o.port, o.bind, False)]
    out = [Listener(o.tls_port, o.bind, True)]
    if o.plain_too:
        out.append(Listener(o.port, "127.0.0.1", False))
    return out


def plan_for(o: Options, nodes: int = 0) -> QueuePlan:
    return queue_plan(o.fleet if o.fleet is not None else nodes, o.tele_s, o.outage_s)


def conf_text(o: Options, out: Path, nodes: int = 0) -> str:
    """mosquitto.conf; `nodes`: the store's node count (Options.fleet overrides it)."""
    d = out.resolve()
    lines = [
        "# Generated by `lanterna broker config` for mosquitto 2.0. Re-running it keeps",
        "# every password and certificate; a running broker re-reads passwd and acl on",
        "# SIGHUP (new listeners or certificates need a restart).",
        "",
        "per_listener_settings false",
        "allow_anonymous false",
        f"password_file {d / PASSWD}",
        f"acl_file {d / ACL}",
        # as root mosquitto drops to this user, who owns the 0600 files written here
        f"user {o.run_as or getpass.getuser()}",
        "",
        # small packets (acks, OTA chunk requests) leave at once instead of waiting out
        # the peer's delayed ACK: ~90 ms less per round trip (docs/ota.md)
        "set_tcp_nodelay true",
        f"max_inflight_messages {MAX_INFLIGHT}",
        *queue_lines(plan_for(o, nodes)),
        f"# payload bytes: a command ({MAX_BYTES}) or an OTA chunk (4 + {MAX_CHUNK})",
        f"message_size_limit {MESSAGE_SIZE_LIMIT}",
        f"max_packet_size {MAX_PACKET_SIZE}",
        # the session and queue of a client gone for good (a removed pole, a retired
        # controller instance) do not hold the broker's memory forever
        "persistent_client_expiration 14d",
        "persistence true",
        f"persistence_location {d / 'data'}/",
        f"log_dest file {d / 'mosquitto.log'}",
        "log_type error",
        "log_type warning",
        "log_type notice",
        "connection_messages true",
    ]
    for x in listeners(o):
        lines += ["", f"listener {x.port}" + (f" {x.bind}" if x.bind else "")]
        if x.tls:
            lines += [
                f"cafile {d / CA_CERT}",
                f"certfile {d / SERVER_CERT}",
                f"keyfile {d / SERVER_KEY}",
                # clients prove who they are by password; client certificates would
                # need a per-node key on the pole (not provisioned yet)
                "require_certificate false",
                "tls_version tlsv1.2",
            ]
    return "\n".join(lines) + "\n"


# -- the whole directory ----------------------------------------------------------------


def _check_conf_values(o: Options) -> None:
    # Each value becomes part of a mosquitto.conf line: a newline in one would add a
    # line of the caller's choosing (`allow_anonymous true`).
    if o.bind is not None:
        try:
            ipaddress.ip_address(o.bind)
        except ValueError:
            if not re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9.-]{0,252})", o.bind):
                raise ConfigError(f"--bind {o.bind!r}: not an address or host name") from None
    if o.run_as is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.-]{0,31}", o.run_as):
        raise ConfigError(f"--run-as {o.run_as!r}: not a user name")
    if any(ord(ch) < 32 or ch == "\x7f" for ch in str(o.out.resolve())):
        raise ConfigError("--out: a path with control characters cannot go in mosquitto.conf")


def check_platforms(platforms: Sequence[str], nodes: Sequence[tuple[str, str]]) -> list[str]:
    """The platform account names, each once, in order; ConfigError for one that cannot
    be an account or that a node already has (the controller's is checked with its
    name, in generate)."""
    ids = {n for n, _ in nodes}
    out: list[str] = []
    for p in platforms:
        check_name("--platform", p)
        if p in ids:
            raise ConfigError(f"--platform {p!r}: a node of the store has that name")
        if p not in out:
            out.append(p)
    return out


def generate(o: Options, nodes: Sequence[tuple[str, str]], home: Path) -> Result:
    """Write the broker configuration for `nodes` ((id, site) pairs from the store) into
    `o.out`, with the passwords of lanterna.broker.credentials under `home`."""
    check_prefix(o.prefix)
    _check_conf_values(o)
    for node, site in nodes:
        check_name("node", node)
        check_name("site", site)
    platforms = check_platforms(o.platforms, nodes)
    if o.tls and o.plain_too and o.port == o.tls_port:
        raise ConfigError(f"--port and --tls-port are both {o.port}")
    if o.tls and not o.hosts:
        raise ConfigError("--tls needs at least one --host for the server certificate")
    if o.tls:
        try:
            check_hosts(o.hosts)
        except TlsError as e:
            raise ConfigError(str(e)) from None
    out = o.out

    with Credentials(home) as creds:
        controller = check_name("controller account", creds.controller_user())
        clash = [n for n, _ in nodes if n == controller]
        if clash:
            raise ConfigError(f"node {clash[0]!r} has the controller account's name")
        if controller in platforms:
            raise ConfigError(f"--platform {controller!r}: the controller account's name")
        accounts = {}
        for node, _ in nodes:
            if o.rotate:
                creds.put(node, new_password())
            accounts[node] = creds.ensure(node)
        accounts[controller] = creds.controller_password(rotate=o.rotate)
        for p in platforms:
            accounts[p] = creds.platform_password(p, rotate=o.rotate)
        removed = creds.keep_platforms(platforms)
    # after every check: a refused name leaves no directory behind
    out.mkdir(mode=0o700, parents=True, exist_ok=True)
    (out / "data").mkdir(mode=0o700, exist_ok=True)
    changed: list[str] = []
    warnings: list[str] = []
    old = (out / PASSWD).read_text() if (out / PASSWD).exists() else ""
    if write_atomic(out / PASSWD, passwd_text(accounts, old).encode(), 0o600):
        changed.append(PASSWD)
    acl = acl_text(nodes, controller, o.prefix, platforms)
    if write_atomic(out / ACL, acl.encode(), 0o644):
        changed.append(ACL)
    files = {"conf": out / CONF, "passwd": out / PASSWD, "acl": out / ACL}
    fingerprint = None
    if o.tls:
        ca_cert, ca_key, made_ca = ensure_ca(out, o.rotate)
        if made_ca:
            changed += [CA_CERT, CA_KEY]
        if ensure_server(out, ca_cert, ca_key, o.hosts, o.rotate or made_ca):
            changed += [SERVER_CERT, SERVER_KEY]
        from cryptography.hazmat.primitives import hashes

        fingerprint = ca_cert.fingerprint(hashes.SHA256()).hex()
        if not fresh(ca_cert):
            end = ca_cert.not_valid_after_utc.date()
            warnings.append(
                f"the CA expires on {end}: give the nodes a new one (--rotate) before then"
            )
        for k, name in (("ca", CA_CERT), ("ca_key", CA_KEY)):
            files[k] = out / name
        files["cert"], files["key"] = out / SERVER_CERT, out / SERVER_KEY
    if write_atomic(out / CONF, conf_text(o, out, len(nodes)).encode(), 0o644):
        changed.append(CONF)
    return Result(
        out=out,
        files=files,
        listeners=listeners(o),
        nodes=[n for n, _ in nodes],
        controller_user=controller,
        credentials=creds.path,
        changed=changed,
        ca_fingerprint=fingerprint,
        warnings=warnings,
        queue=plan_for(o, len(nodes)),
        platforms=platforms,
        removed_platforms=removed,
        prefix=o.prefix,
    )
