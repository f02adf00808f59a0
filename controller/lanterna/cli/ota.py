"""Signed firmware updates: `lanterna ota keygen`, `ota build`, `ota inspect`.

Thin over lanterna.ota.bundle (format: docs/ota.md). The keys live beside the store
(``$LANTERNA_HOME`` or the per-user directory, as ``--db`` resolves it). Exit statuses as
everywhere (docs/cli.md): 1 a key is missing or already exists, or mpy-cross failed;
4 malformed input (a version, a board, a key file) or a malformed or tampered bundle.

Rollouts (`ota rollout|status|pause|resume|abort`, docs/ota.md "Rollouts") are
thin over lanterna.ota.rollout; starting one (or its refusal), pausing, resuming and
aborting it are in the audit log (`lanterna audit --action rollout`).
"""

from __future__ import annotations

import fcntl
import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from lamp.cmd.args import ARGS
from lanterna.audit import target_of
from lanterna.cli.audit import note
from lanterna.cli.commands import select_nodes
from lanterna.cli.options import json_option, pass_ctx, prefix_option, selection
from lanterna.cli.output import emit_json, table
from lanterna.cli.params import Share
from lanterna.context import Ctx, store_errors
from lanterna.device import firmware as fw
from lanterna.errors import EXIT_FAILED, EXIT_MALFORMED, LanternaError
from lanterna.ota import bundle as ob
from lanterna.ota import rollout as ro
from lanterna.ota.server import bundle_id


def ota_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The library's errors as one line and the exit status their kind calls for."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (ob.KeyMissing, ob.KeyExists, fw.FirmwareBuildError) as e:
            raise LanternaError(str(e), EXIT_FAILED) from None
        except ob.OtaError as e:  # BundleError, KeyFileError, BadInput
            raise LanternaError(str(e), EXIT_MALFORMED) from None

    return wrapper


@click.group()
def ota() -> None:
    """Signed firmware updates: the fleet key, bundles (docs/ota.md)."""


@ota.command("keygen")
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where to write the keys. Default: beside the store ($LANTERNA_HOME).",
)
@click.option("--force", is_flag=True, help="Replace an existing key (orphans the fleet).")
@json_option
@pass_ctx
@ota_errors
def ota_keygen(c: Ctx, directory: Path | None, force: bool, as_json: bool) -> None:
    """Create the fleet signing key pair: ota-signing.pem (private, 0600, stays here) and
    ota-public.json (what every node holds). Refuses to replace a key without --force.

    \b
    Example:
      lanterna ota keygen
      lanterna ota keygen --dir /etc/lanterna --json
    """
    directory = directory or c.home
    pub = ob.keygen(directory, force)
    out = {
        "alg": ob.ALG,
        "key_id": pub.key_id,
        "private": str(directory / ob.PRIVATE_NAME),
        "public": str(directory / ob.PUBLIC_NAME),
    }
    if as_json:
        emit_json(out)
        return
    click.echo(f"key {pub.key_id} ({ob.ALG})")
    click.echo(f"private: {out['private']} (0600: keep it safe, losing it orphans the fleet)")
    click.echo(f"public:  {out['public']} (give this to the nodes)")


@ota.command("build")
@click.argument("src", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--version", "version", required=True, help="The bundle's version, X.Y.Z.")
@click.option("--min-version", help="The minimum version (X.Y.Z) the manifest names.")
@click.option(
    "--board", "boards", multiple=True, help="A board it is for (repeatable; default: all)."
)
@click.option(
    "--key",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The signing key. Default: ota-signing.pem beside the store.",
)
@click.option(
    "-o", "--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="Bundle."
)
@json_option
@pass_ctx
@ota_errors
def ota_build(
    c: Ctx,
    src: Path,
    version: str,
    min_version: str | None,
    boards: tuple[str, ...],
    key: Path | None,
    out: Path,
    as_json: bool,
) -> None:
    """Compile SRC (the firmware tree) as VERSION with mpy-cross, sign the manifest, and
    write the bundle to OUT (atomically: a failed build leaves nothing behind).

    \b
    Example:
      lanterna ota build firmware/ --version 0.2.0 --min-version 0.1.0 \\
          --board esp32-devkitc --board olimex-esp32-poe -o lanterna-0.2.0.ota
    """
    ob.check_version("--version", version)  # before the key: the cheap mistakes first
    if min_version is not None:
        ob.check_version("--min-version", min_version)
    ob.check_boards(boards)
    private = ob.load_private(key or c.home / ob.PRIVATE_NAME)
    click.echo(f"compiling {src} as {version} (mpy-cross)", err=True)
    built = ob.build(src, out, version, private, min_version, boards)
    m = built.manifest
    if as_json:
        emit_json({"bundle": str(built.path), "bytes": built.bytes, "manifest": m})
        return
    click.echo(f"bundle {built.path}: {built.bytes} bytes, signed by key {m['key_id']}")
    _summary(m)


def _summary(m: dict[str, Any]) -> None:
    click.echo(f"version {m['version']} (min {m['min_version'] or '-'}), created {m['created']}")
    click.echo(f"boards: {', '.join(m['boards'])}")
    rows = [(f["path"], f["size"], f["sha256"][:16]) for f in m["files"]]
    rows.append(("total", m["size"], ""))
    click.echo(table(("file", "bytes", "sha256"), rows, right=(1,)))


@ota.command("inspect")
@click.argument("bundle", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--key",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The public key (ota-public.json). Default: the one `ota keygen` wrote.",
)
@json_option
@pass_ctx
@ota_errors
def ota_inspect(c: Ctx, bundle: Path, key: Path | None, as_json: bool) -> None:
    """Check a bundle as a node would (layout, signature, every file's size and sha256)
    and show its manifest; exit 4 naming the first thing wrong.

    \b
    Example:
      lanterna ota inspect lanterna-0.2.0.ota --key ota-public.json
    """
    pub = ob.load_public(key or c.home / ob.PUBLIC_NAME)
    b = ob.read_bundle(bundle, pub)
    if as_json:
        emit_json(
            {
                "bundle": str(bundle),
                "bytes": b.bytes,
                "manifest": b.manifest,
                "signature": {"valid": True, "key_id": b.key_id},
            }
        )
        return
    click.echo(f"bundle {bundle}: {b.bytes} bytes, format {b.manifest['format']}")
    _summary(b.manifest)
    click.echo(f"signature: valid ({b.key_id})")


# -- rollouts ---------------------------------------------------------------------------


def rollout_errors(fn: Any) -> Any:
    import functools

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ro.RolloutError as e:
            code = EXIT_MALFORMED if str(e).startswith("--") else EXIT_FAILED
            raise LanternaError(str(e), code) from None

    return store_errors(ota_errors(wrapper))


def _lock(c: Ctx) -> Any:
    """The orchestrator's lock, or None when another process holds it."""
    c.home.mkdir(parents=True, exist_ok=True)
    f = open(c.home / "rollout.lock", "w")  # noqa: SIM115 -- held while the loop runs
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        f.close()
        return None
    return f


def _run(c: Ctx, rid: int, bundle: bytes, prefix: str, as_json: bool) -> None:
    lock = _lock(c)
    if lock is None:
        click.echo(f"rollout {rid}: the orchestrator already running continues it", err=True)
        return
    store = c.store()
    total = len(ro.Rollouts(store).nodes(rid))
    bar = click.progressbar(length=total, label=f"rollout {rid}", file=sys.stderr, show_pos=True)
    seen = [0]

    def progress(counts: dict[str, int]) -> None:
        settled = sum(counts.get(s, 0) for s in ro.SETTLED)
        flying = sum(counts.get(s, 0) for s in ro.IN_FLIGHT)
        bar.label = f"rollout {rid}: {flying} in flight, {counts.get('failed', 0)} failed"
        if settled > seen[0]:
            bar.update(settled - seen[0])
            seen[0] = settled
        else:
            bar.render_progress()

    orch = ro.Orchestrator(store, c.broker(), rid, bundle, prefix, progress)
    try:
        with bar:
            state = orch.run()
    except KeyboardInterrupt:
        click.echo(f"\ninterrupted: `lanterna ota resume` continues rollout {rid}", err=True)
        raise SystemExit(130) from None
    finally:
        lock.close()
    _show(c, rid, as_json)
    if state != "done" or any(n["state"] != "done" for n in ro.Rollouts(store).nodes(rid)):
        c.close()
        raise SystemExit(EXIT_FAILED)


def _show(c: Ctx, rid: int | None, as_json: bool) -> None:
    rs = ro.Rollouts(c.store())
    r = rs.get(rid)
    nodes = rs.nodes(r["id"])
    if as_json:
        emit_json({"rollout": r, "summary": ro.summary(nodes), "nodes": nodes})
        return
    counts = ", ".join(f"{v} {k}" for k, v in sorted(ro.summary(nodes).items()))
    click.echo(f"rollout {r['id']}: {r['version']} ({r['bundle']}), {r['state']}")
    if r["detail"]:
        click.echo(f"  {r['detail']}")
    click.echo(f"  {len(nodes)} nodes: {counts}")
    rows = [
        (
            n["node"],
            n["wave"],
            n["state"],
            "" if n["progress"] is None else f"{n['progress']}%",
            "" if n["result"] is None else n["result"],
            n["detail"] or "",
        )
        for n in nodes
    ]
    click.echo(table(("node", "wave", "state", "progress", "result", "detail"), rows, right=(1,)))


@ota.command("rollout")
@click.argument("bundle", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@selection
@click.option(
    "--canary", type=Share(count_ok=True), help="First N nodes, or P% of them, alone (wave 0)."
)
@click.option("--waves", default="100%", show_default=True, help="Cumulative shares.")
@click.option(
    "--max-failures",
    type=Share(zero=True),
    default="10%",
    show_default=True,
    help="Of the settled nodes.",
)
@click.option(
    "--health-window",
    type=click.FloatRange(min=0),
    default=60.0,
    show_default=True,
    help="Seconds between a wave settled and the next offered.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=1),
    default=900.0,
    show_default=True,
    help="Seconds a node may take from the offer to its confirmed new version.",
)
@click.option(
    "--chunk",
    type=click.IntRange(*ARGS["ota"]["chunk"][1:]),  # the node's range (lamp.cmd.args)
    default=ARGS["ota"]["chunk"][0],
    show_default=True,
)
@click.option(
    "--key",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The public key (ota-public.json). Default: the one `ota keygen` wrote.",
)
@prefix_option
@json_option
@pass_ctx
@rollout_errors
def ota_rollout(
    c: Ctx,
    bundle: Path,
    node_ids: tuple[str, ...],
    group: str | None,
    site: str | None,
    all_nodes: bool,
    canary: str | None,
    waves: str,
    max_failures: float,
    health_window: float,
    timeout: float,
    chunk: int,
    key: Path | None,
    prefix: str,
    as_json: bool,
) -> None:
    """Roll BUNDLE out to the selected nodes: the canary first, then the waves, each
    opened when the one before has settled and its health window has passed. Halts when
    more than --max-failures of the settled nodes failed. The bundle is checked (layout,
    signature, every file) before any node hears of it.

    \b
    Example:
      lanterna ota rollout lanterna-0.2.0.ota --site greenwich --canary 1 \\
          --waves 10%,50%,100% --max-failures 10% --health-window 120
    """
    plan = ro.Plan(
        canary=canary,
        waves=ro.parse_waves(waves),
        max_failures=max_failures,
        health_window=health_window,
        timeout=timeout,
        chunk=chunk,
    )
    pub = ob.load_public(key or c.home / ob.PUBLIC_NAME)
    chosen = target_of(node_ids, group, site, all_nodes)
    try:
        b = ob.read_bundle(bundle, pub)
    except ob.BundleError as e:
        rid = ro.Rollouts(c.store()).refuse(str(bundle), f"refused before any node: {e}")
        args = {"bundle": str(bundle), "rollout": rid}
        note(c, "rollout.start", chosen, [], args, "refused: the bundle", str(e))
        raise ob.BundleError(f"rollout {rid} refused: {e}") from None
    data = bundle.read_bytes()
    nodes = select_nodes(c, node_ids, group, site, all_nodes)
    target = {"node": list(node_ids), "group": group, "site": site, "all": all_nodes}
    bid = bundle_id(data)
    rid = ro.Rollouts(c.store()).create(
        str(bundle),
        bid,
        b.manifest["version"],
        b.bytes,
        target,
        plan,
        ro.assign_waves([n.id for n in nodes], plan),
    )
    args = {"bundle": str(bundle), "bundle_id": bid, "version": b.manifest["version"]}
    note(c, "rollout.start", chosen, [n.id for n in nodes], {**args, "rollout": rid}, "started")
    click.echo(f"rollout {rid}: {b.manifest['version']} to {len(nodes)} nodes", err=True)
    _run(c, rid, data, prefix, as_json)


@ota.command("status")
@click.argument("rollout", type=int, required=False)
@json_option
@pass_ctx
@rollout_errors
def ota_status(c: Ctx, rollout: int | None, as_json: bool) -> None:
    """A rollout (default: the active one, else the latest) and every node's state, with
    the LwM2M Update Result each reported (1 success, 5 integrity, 6 unsupported, 8 failed)."""
    _show(c, rollout, as_json)


def _change(c: Ctx, rollout: int | None, to: str) -> dict[str, Any]:
    rs = ro.Rollouts(c.store())
    r = rs.get(rollout)
    if r["state"] not in ro.ACTIVE:
        raise ro.RolloutError(f"rollout {r['id']} is {r['state']}: nothing to {to}")
    state = {"pause": "paused", "abort": "aborted", "resume": "running"}[to]
    rs.set_state(r["id"], state)
    nodes = [n["node"] for n in rs.nodes(r["id"])]
    args = {"rollout": r["id"], "version": r["version"], "was": r["state"]}
    note(c, f"rollout.{to}", f"rollout {r['id']}", nodes, args, state)
    return r


def _state_command(verb: str, done: str, doc: str) -> click.Command:
    @ota.command(verb, help=doc)
    @click.argument("rollout", type=int, required=False)
    @pass_ctx
    @rollout_errors
    def change(c: Ctx, rollout: int | None) -> None:
        r = _change(c, rollout, verb)
        click.echo(f"rollout {r['id']} {done}")

    return change


ota_pause = _state_command(
    "pause", "paused", "Offer no more nodes until `ota resume` (downloads under way go on)."
)
ota_abort = _state_command(
    "abort", "aborted", "Stop the rollout for good: nothing more is offered or served."
)


@ota.command("resume")
@click.argument("rollout", type=int, required=False)
@prefix_option
@json_option
@pass_ctx
@rollout_errors
def ota_resume(c: Ctx, rollout: int | None, prefix: str, as_json: bool) -> None:
    """Resume a paused rollout, or one whose controller stopped: nodes in flight are
    offered again (a node resumes its download at the byte, or says it is done)."""
    r = _change(c, rollout, "resume")
    lock = _lock(c)
    if lock is None:
        click.echo(f"rollout {r['id']} resumed (its orchestrator is running)", err=True)
        return
    lock.close()  # _run takes it again: nothing runs between
    ro.Rollouts(c.store()).requeue(r["id"])
    try:
        bundle = Path(r["bundle"]).read_bytes()
    except OSError as e:
        raise ro.RolloutError(f"{r['bundle']}: cannot read the bundle: {e.strerror}") from None
    _run(c, r["id"], bundle, prefix, as_json)


COMMANDS = [ota]
