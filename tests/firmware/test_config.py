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
