"""`lanterna board check`: the shipped boards pass; a bad one is one line and exit 1."""

from __future__ import annotations

import json
import subprocess

import pytest
from click.testing import CliRunner

from lanterna.cli import cli

SHIPPED = ["esp32-devkitc", "esp32-s3-devkitc-1", "olimex-esp32-poe", "sim"]


def test_shipped_boards_are_valid():
    result = CliRunner().invoke(cli, ["board", "check", "--json", *SHIPPED])
    assert result.exit_code == 0, result.output
    boards = json.loads(result.output)
    assert [b["name"] for b in boards] == SHIPPED
    assert boards[0]["heap"] == 110 * 1024


@pytest.mark.parametrize(
    ("section", "key", "value", "message"),
    [
        ("pwm", "pin", 36, "pwm.pin: GPIO 36 is input-only on esp32, it cannot do PWM"),
        ("cp_adc", "pin", 21, "cp_adc.pin: GPIO 21 cannot do ADC on esp32"),
        ("relay", "pin", 25, "relay.pin: GPIO 25 is already used by pwm.pin"),
    ],
)
def test_bad_pin_is_one_line_naming_board_and_key(
    tmp_path, repo, lanterna_cmd, section, key, value, message
):
    board = json.loads((repo / "boards" / "esp32-devkitc.json").read_text())
    board[section][key] = value
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(board))
    proc = subprocess.run(
        [*lanterna_cmd, "board", "check", str(bad)], capture_output=True, text=True
    )
    assert proc.returncode == 4  # malformed input (docs/cli.md)
    assert proc.stdout == ""
    assert proc.stderr.strip().splitlines() == [f"Error: board esp32-devkitc: {message}"]


def test_unreadable_board_file_is_one_line(tmp_path):
    bad = tmp_path / "broken.json"
    bad.write_text('{"name": "x",')
    result = CliRunner().invoke(cli, ["board", "check", str(bad)])
    assert result.exit_code == 4
    assert "not valid JSON" in result.output and "Traceback" not in result.output
    result = CliRunner().invoke(cli, ["board", "check", "no-such-board"])
    assert result.exit_code == 4 and "cannot read" in result.output
