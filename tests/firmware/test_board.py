# Board files: the shipped ones load; every kind of bad pin is refused with an error that
# names the board and the key.
from fw import load_board, raises
from lamp.board import BoardError, parse_heap, validate


def _devkitc(**changes):
    b = load_board("esp32-devkitc")
    b["heap"] = "110K"
    for path, value in changes.items():
        sect, _, key = path.partition("__")
        if key:
            b[sect] = dict(b[sect])
            b[sect][key] = value
        else:
            b[sect] = value
    return b


def _error(b):
    return str(raises(BoardError, validate, b))


def test_shipped_boards_load_with_heap_in_bytes():
    for name in ("esp32-devkitc", "esp32-s3-devkitc-1", "olimex-esp32-poe", "sim"):
        b = load_board(name)
        assert b["name"] == name
        assert isinstance(b["heap"], int)
    assert load_board("esp32-devkitc")["heap"] == 110 * 1024
    assert load_board("esp32-s3-devkitc-1")["psram"] is True
    assert load_board("olimex-esp32-poe")["network"] == "lan"


def test_parse_heap_units():
    assert parse_heap("110K") == 112640
    assert parse_heap("2M") == 2097152
    assert parse_heap(4096) == 4096
    raises(ValueError, parse_heap, "lots")
    raises(ValueError, parse_heap, "K")


def test_input_only_pin_cannot_do_pwm():
    msg = _error(_devkitc(pwm__pin=34))
    assert msg == "board esp32-devkitc: pwm.pin: GPIO 34 is input-only on esp32, it cannot do PWM"


def test_pin_without_adc_is_refused_for_control_pilot():
    msg = _error(_devkitc(cp_adc__pin=23))
    assert "board esp32-devkitc: cp_adc.pin:" in msg
    assert "cannot do ADC" in msg


def test_adc2_pin_is_refused_on_a_wlan_board():
    msg = _error(_devkitc(cp_adc__pin=14))
    assert msg.startswith("board esp32-devkitc: cp_adc.pin: GPIO 14 is on ADC2")


def test_duplicate_pin_names_both_users():
    msg = _error(_devkitc(relay__pin=25))
    assert msg == "board esp32-devkitc: relay.pin: GPIO 25 is already used by pwm.pin"


def test_flash_and_missing_pins_are_refused():
    assert "drives the SPI flash" in _error(_devkitc(pir__pin=7))
    assert "does not exist" in _error(_devkitc(pir__pin=24))
    assert "expected a GPIO number" in _error(_devkitc(pir__pin="27"))


def test_unknown_and_missing_keys():
    b = _devkitc()
    b["colour"] = "green"
    assert _error(b) == "board esp32-devkitc: colour: unknown key"
    b = _devkitc()
    b["pwm"] = {"pin": 25, "freq": 1000, "bits": 13, "invert": True}
    assert _error(b) == "board esp32-devkitc: pwm.invert: unknown key"
    b = _devkitc()
    del b["relay"]
    assert _error(b).startswith("board esp32-devkitc: relay: missing")
    b = _devkitc(pwm=None)
    assert _error(b) == "board esp32-devkitc: pwm: required"


def test_ethernet_pins_are_reserved_on_a_lan_board():
    b = load_board("olimex-esp32-poe")
    b["relay"] = {"pin": 25, "active_high": True}
    assert "RMII Ethernet pin" in _error(b)


def test_psram_pins_are_reserved_on_s3_with_psram():
    b = load_board("esp32-s3-devkitc-1")
    b["pir"] = {"pin": 35, "active_high": True}
    assert "taken by the PSRAM" in _error(b)


def test_pwm_resolution_must_fit_the_ledc_clock():
    assert "80 MHz" in _error(_devkitc(pwm__freq=20000, pwm__bits=13))
    assert "outside 50..40000" in _error(_devkitc(pwm__freq=10))


def test_bad_values():
    assert "unknown chip" in _error(_devkitc(chip="esp8266"))
    assert "network" in _error(_devkitc(network="lora"))
    assert "too small" in _error(_devkitc(heap="8K"))
    assert "rtc.chip" in _error(_devkitc(rtc={"chip": "ds1307"}))


def test_sensors_are_known_distinct_and_on_a_bus_the_board_has():
    assert load_board("sim")["sensors"] == ["bme280", "bh1750", "scd4x", "pms5003"]
    assert _error(_devkitc(sensors=["bme280", "dht22"])).startswith(
        "board esp32-devkitc: sensors[1]: unknown sensor 'dht22' (known: bh1750, bme280,"
    )
    assert _error(_devkitc(sensors=["bh1750", "bh1750"])) == (
        "board esp32-devkitc: sensors[1]: bh1750 named twice"
    )
    assert _error(_devkitc(sensors=["pms5003", "sds011"])) == (
        "board esp32-devkitc: sensors[1]: pms5003 and sds011 would share the one UART"
    )
    assert _error(_devkitc(sensors=["sds011"], uart=None)) == (
        "board esp32-devkitc: sensors[0]: sds011 needs the board's uart, which is null"
    )
    assert _error(_devkitc(sensors="bme280")) == (
        "board esp32-devkitc: sensors: expected list, got 'bme280'"
    )
    b = load_board("esp32-devkitc")
    del b["sensors"]
    assert _error(b) == "board esp32-devkitc: sensors: missing"
    assert validate(_devkitc(sensors=[]))["sensors"] == []


def test_the_image_a_board_needs():
    assert load_board("esp32-devkitc")["image"] == {"romfs": True, "micropython": "1.23.0"}
    assert load_board("esp32-s3-devkitc-1")["image"]["romfs"] is False  # PSRAM: stock runs it
    msg = _error(_devkitc(image__romfs="yes"))
    assert msg == "board esp32-devkitc: image.romfs: expected bool, got 'yes'"
    msg = _error(_devkitc(image__micropython="1.23"))
    assert msg == "board esp32-devkitc: image.micropython: expected a release X.Y.Z, got '1.23'"
    assert _error(_devkitc(image=None)) == "board esp32-devkitc: image: required"
