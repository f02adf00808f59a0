"""Signed firmware updates: `lanterna ota keygen`, `ota build`, `ota inspect`.

Thin over lanterna.ota.bundle (format: docs/ota.md). The keys live beside the store
(``$LANTERNA_HOME`` or the per-user directory, as ``--db`` resolves it). Exit statuses as
everywhere (docs/cli.md): 1 a key is missing or already exists, or mpy-cross failed;
4 malformed input (a version, a board, a key file) or a malformed or tampered bundle.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from lanterna.cli import cli
from lanterna.cli.output import emit_json, json_option, table
from lanterna.context import EXIT_FAILED, EXIT_MALFORMED, Ctx, LanternaError, pass_ctx
from lanterna.device import firmware as fw
from lanterna.ota import bundle as ob


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


@cli.group()
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
