"""`make demo` (lanterna demo), small: it runs end to end and leaves nothing running,
whether it ends by itself or by Ctrl-C."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

LANTERNA = str(Path(sys.executable).with_name("lanterna"))


def descendants(pid: int) -> set[int]:
    """Every process below `pid` (from /proc), including grandchildren."""
    children: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(d.name))
    out: set[int] = set()
    todo = [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.add(c)
            todo.append(c)
    return out


def alive(pids: set[int]) -> set[int]:
    return {p for p in pids if Path(f"/proc/{p}").exists()}


def test_the_demo_runs_end_to_end_and_stops_everything_it_started(tmp_path):
    home = tmp_path / "demo"
    args = ["demo", "--home", str(home), "--nodes-per-site", "2", "--warp", "60"]
    r = subprocess.run(
        [LANTERNA, *args, "--seconds", "10"], capture_output=True, text=True, timeout=300
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "6 of 6 lamp posts online" in r.stderr
    assert "6 of 6 ok" in r.stderr  # the schedule push
    assert "energy report" in r.stderr and "\ntotal " in r.stdout
    assert (home / "energy.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "demo stopped" in r.stderr
    # the console served the district, and the demo said where and how to sign in
    assert "$ lanterna web --listen 127.0.0.1:" in r.stderr
    assert "console: http://127.0.0.1:" in r.stderr and "sign in as operator" in r.stderr


def test_ctrl_c_stops_the_demo_and_everything_it_started(tmp_path):
    home = tmp_path / "demo"
    p = subprocess.Popen(
        [LANTERNA, "demo", "--home", str(home), "--nodes-per-site", "2", "--seconds", "600"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # Wait until the whole district runs (its status lines), then Ctrl-C.
        deadline = time.monotonic() + 120
        seen = ""
        assert p.stderr is not None
        while "$ lanterna status" not in seen and time.monotonic() < deadline:
            line = p.stderr.readline()
            if not line:
                break
            seen += line
        assert "$ lanterna status" in seen, seen
        started = descendants(p.pid)
        assert len(started) >= 6 + 1 + 1  # six nodes, serve, mosquitto (and the sims)
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=120)
        assert "demo stopped" in err
        assert alive(started) == set(), "left running: " + ", ".join(
            Path(f"/proc/{x}/cmdline").read_text().replace("\0", " ")[:80] for x in alive(started)
        )
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
