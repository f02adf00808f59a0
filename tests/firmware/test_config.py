# Node configuration: defaults, and errors that name the key.
from fw import raises
from lamp.config import ConfigError, build


def test_defaults_fill_missing_keys():
    cfg = build({"node": "gw-001", "site": "greenwich"})
    assert cfg["node"] == "gw-001" and cfg["failsafe_level"] == 100


def test_errors_name_the_key():
    assert str(raises(ConfigError, build, {"colour": 1})) == "config: colour: unknown key"
    e = raises(ConfigError, build, {"failsafe_level": 120})
    assert str(e) == "config: failsafe_level: 120 not a number in 0..100"
    e = raises(ConfigError, build, {"failsafe_level": True})
    assert "failsafe_level: True not a number" in str(e)
    e = raises(ConfigError, build, {"log_level": "chatty"})
    assert "log_level: must be one of" in str(e)
    raises(ConfigError, build, [1, 2])
    e = raises(ConfigError, build, {"dimmer": 5})
    assert str(e) == "config: dimmer: expected an object, got 5"


def test_ota_key_is_the_fleet_modulus_in_hex():
    assert build({})["ota_key"] is None  # no key: every update refused
    n = "c" + "0" * 766 + "1"
    assert build({"ota_key": n})["ota_key"] == n
    for bad in ("ab" * 10, n.upper(), n[:-1] + "g", n + "0", 42):
        assert "config: ota_key: expected" in str(raises(ConfigError, build, {"ota_key": bad}))
