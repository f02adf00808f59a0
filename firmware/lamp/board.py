# Board files: which pin does what on a given lamp-post controller, and how much heap the
# application may use there. Pure code: it runs on the node, in the sim and in the
# controller (CPython), so a bad board file is caught the same way everywhere.
import json

# Pin capabilities per chip, from the datasheets:
# - ESP32 (datasheet v4.x, sec. 2.2 / table "Peripheral Pin Configurations"): GPIO 6-11
#   drive the SPI flash; 34-39 are input-only (no output, so no PWM); ADC1 is on
#   32-39, ADC2 on 0/2/4/12-15/25-27 and ADC2 cannot be read while WiFi runs
#   (ESP-IDF ADC docs), so a wlan board must take its analog inputs from ADC1.
#   The RMII Ethernet interface has fixed pins 19/21/22/25/26/27.
# - ESP32-S3 (datasheet sec. 2.3): GPIO 0-21 and 26-48; 26-32 drive the SPI flash and
#   octal PSRAM also takes 33-37; ADC1 is on GPIO 1-10, ADC2 on 11-20.


def _mask(*pins):
    # GPIO numbers -> bit mask: a chip's capability table costs one int, not a tuple.
    m = 0
    for p in pins:
        m |= 1 << p
    return m


_ALL_SIM = (1 << 64) - 1
# chip -> (gpio, flash, psram, input_only, adc1, adc2, rmii) as bit masks
_CHIPS = {
    "esp32": (
        _mask(*(tuple(range(0, 20)) + (21, 22, 23, 25, 26, 27) + tuple(range(32, 40)))),
        _mask(6, 7, 8, 9, 10, 11),
        _mask(16, 17),
        _mask(34, 35, 36, 37, 38, 39),
        _mask(32, 33, 34, 35, 36, 37, 38, 39),
        _mask(0, 2, 4, 12, 13, 14, 15, 25, 26, 27),
        _mask(19, 21, 22, 25, 26, 27),
    ),
    "esp32s3": (
        _mask(*(tuple(range(0, 22)) + tuple(range(26, 49)))),
        _mask(26, 27, 28, 29, 30, 31, 32),
        _mask(33, 34, 35, 36, 37),
        0,
        _mask(*range(1, 11)),
        _mask(*range(11, 21)),
        0,
    ),
    # The simulated board has 64 pins that can do anything.
    "sim": (_ALL_SIM, 0, 0, 0, _ALL_SIM, 0, 0),
}
_GPIO, _FLASH, _PSRAM, _INPUT_ONLY, _ADC1, _ADC2, _RMII = 0, 1, 2, 3, 4, 5, 6


# key -> (required, kind). Kinds: a type name, or a dict of sub-keys for a section.
# "out" is an output pin, "in" an input pin, "adc" an analog input pin.
_PIN = "pin"
_SECTIONS = {
    "esptool": {"chip": "str", "offset": "int", "baud": "int"},
    "pwm": {"pin": "out", "freq": "int", "bits": "int"},
    "relay": {"pin": "out", "active_high": "bool"},
    "pir": {"pin": "in", "active_high": "bool"},
    "s0": {"pin": "in"},
    "cp_adc": {"pin": "adc", "scale": "num", "offset_mv": "int"},
    "i2c": {"id": "int", "sda": "out", "scl": "out", "freq": "int"},
    "uart": {"id": "int", "tx": "out", "rx": "in"},
    "status_led": {"pin": "out", "active_high": "bool"},
    "rtc": {"chip": "str"},
    # The MicroPython image the board needs (docs/boards.md, docs/firmware.md "Slots: files
    # or ROMFS"): romfs, a build with a romfs partition, without which the connected node's
    # code from .mpy files does not fit the heap; micropython, the oldest release it runs.
    "image": {"romfs": "bool", "micropython": "str"},
    "lan": {
        "phy": "str",
        "phy_addr": "int",
        "mdc": "out",
        "mdio": "out",
        "power": "out",
        "ref_clk": "out",
    },
}
_TOP = {
    "name": "str",
    "chip": "str",
    "module": "str",
    "flash_mb": "int",
    "psram": "bool",
    "heap": "heap",
    "network": "str",
    "sensors": "list",
}
# MicroPython dicts do not keep insertion order: check in this order so that errors
# (which pin is "already used by" which) read the same on every interpreter.
_TOP_ORDER = ("name", "chip", "module", "flash_mb", "psram", "heap", "network", "sensors")
_SECTION_ORDER = (
    "esptool",
    "pwm",
    "relay",
    "pir",
    "s0",
    "cp_adc",
    "i2c",
    "uart",
    "status_led",
    "rtc",
    "lan",
    "image",
)
_SUB_ORDER = {
    "lan": ("phy", "phy_addr", "mdc", "mdio", "power", "ref_clk"),
    "i2c": ("id", "sda", "scl", "freq"),
    "uart": ("id", "tx", "rx"),
}
# Sections a board may set to null (the peripheral is not fitted).
_OPTIONAL = ("esptool", "relay", "pir", "s0", "cp_adc", "uart", "status_led", "rtc", "lan")
_NETWORKS = ("wlan", "lan")
_RTC_CHIPS = ("ds3231", "pcf8563")
# Sensors a board may name (`"sensors": [...]`, [] for none) and the bus each sits on;
# one UART means at most one particulate sensor. The node config may narrow the list.
SENSOR_BUS = {"bme280": "i2c", "bh1750": "i2c", "scd4x": "i2c", "pms5003": "uart", "sds011": "uart"}
# ESP32 and ESP32-S3 LEDC timers count from the 80 MHz APB clock (TRM, LED PWM chapter):
# freq * 2**bits may not exceed it.
_LEDC_CLOCK = 80000000


class BoardError(ValueError):
    pass


def parse_heap(value):
    # "110K" / "2M" / 112640 -> bytes
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value:
        mult = {"K": 1024, "M": 1024 * 1024}.get(value[-1].upper(), 1)
        digits = value[:-1] if mult > 1 else value
        if digits.isdigit():
            return int(digits) * mult
    raise ValueError("not a heap size: %r" % (value,))


class _Check:
    def __init__(self, name):
        self.name = name
        self.used = {}

    def fail(self, key, msg):
        raise BoardError("board %s: %s: %s" % (self.name, key, msg))

    def value(self, key, kind, v):
        if kind == "str":
            ok = isinstance(v, str) and v != ""
        elif kind == "bool":
            ok = isinstance(v, bool)
        elif kind == "num":
            ok = isinstance(v, (int, float)) and not isinstance(v, bool)
        elif kind == "list":
            ok = isinstance(v, list)
        elif kind == "heap":
            try:
                parse_heap(v)
                ok = True
            except ValueError:
                ok = False
        else:
            ok = isinstance(v, int) and not isinstance(v, bool)
        if not ok:
            self.fail(key, "expected %s, got %r" % (kind, v))

    def pin(self, key, kind, pin, chip, board):
        caps = _CHIPS[chip]
        if not isinstance(pin, int) or isinstance(pin, bool):
            self.fail(key, "expected a GPIO number, got %r" % (pin,))
        bit = 1 << pin if 0 <= pin < 64 else 0
        if not caps[_GPIO] & bit:
            self.fail(key, "GPIO %d does not exist on %s" % (pin, chip))
        if caps[_FLASH] & bit:
            self.fail(key, "GPIO %d drives the SPI flash on %s" % (pin, chip))
        if board.get("psram") and caps[_PSRAM] & bit:
            self.fail(key, "GPIO %d is taken by the PSRAM on %s" % (pin, chip))
        if board.get("network") == "lan" and caps[_RMII] & bit:
            self.fail(key, "GPIO %d is an RMII Ethernet pin on %s" % (pin, chip))
        if kind == "out" and caps[_INPUT_ONLY] & bit:
            what = "PWM" if key.startswith("pwm.") else "output"
            self.fail(key, "GPIO %d is input-only on %s, it cannot do %s" % (pin, chip, what))
        if kind == "adc":
            if caps[_ADC2] & bit and board.get("network") == "wlan":
                self.fail(key, "GPIO %d is on ADC2, unusable while WiFi runs on %s" % (pin, chip))
            if not (caps[_ADC1] | caps[_ADC2]) & bit:
                self.fail(key, "GPIO %d cannot do ADC on %s" % (pin, chip))
        other = self.used.get(pin)
        if other is not None:
            self.fail(key, "GPIO %d is already used by %s" % (pin, other))
        self.used[pin] = key


def validate(board, source=None):
    # Returns the board with "heap" normalised to bytes; raises BoardError naming the
    # board and the offending key.
    if not isinstance(board, dict):
        raise BoardError("board %s: not a JSON object" % (source or "?"))
    name = board.get("name") if isinstance(board.get("name"), str) else (source or "?")
    c = _Check(name)
    for key in board:
        if key not in _TOP and key not in _SECTIONS:
            c.fail(key, "unknown key")
    for key in _TOP_ORDER:
        if key not in board:
            c.fail(key, "missing")
        c.value(key, _TOP[key], board[key])
    chip = board["chip"]
    if chip not in _CHIPS:
        c.fail("chip", "unknown chip %r (known: %s)" % (chip, ", ".join(sorted(_CHIPS))))
    if board["network"] not in _NETWORKS:
        c.fail("network", "must be one of %s, got %r" % ("/".join(_NETWORKS), board["network"]))
    if parse_heap(board["heap"]) < 16 * 1024:
        c.fail("heap", "%r is too small to run the application" % (board["heap"],))
    for sect in _SECTION_ORDER:
        if sect not in board:
            c.fail(sect, "missing (use null when the board has none)")
        spec = _SECTIONS[sect]
        val = board[sect]
        if val is None:
            if sect not in _OPTIONAL:
                c.fail(sect, "required")
            continue
        if not isinstance(val, dict):
            c.fail(sect, "expected an object, got %r" % (val,))
        for sub in val:
            if sub not in spec:
                c.fail("%s.%s" % (sect, sub), "unknown key")
        for sub in _SUB_ORDER.get(sect) or sorted(spec):
            key = "%s.%s" % (sect, sub)
            if sub not in val:
                c.fail(key, "missing")
            kind = spec[sub]
            if kind in ("out", "in", "adc"):
                c.pin(key, kind, val[sub], chip, board)
            else:
                c.value(key, kind, val[sub])
    pwm = board["pwm"]
    if not 50 <= pwm["freq"] <= 40000:
        c.fail("pwm.freq", "%d Hz is outside 50..40000" % pwm["freq"])
    if not 8 <= pwm["bits"] <= 16 or pwm["freq"] << pwm["bits"] > _LEDC_CLOCK:
        c.fail(
            "pwm.bits",
            "%d bits at %d Hz exceeds the 80 MHz LEDC clock" % (pwm["bits"], pwm["freq"]),
        )
    if board["network"] == "lan" and chip != "sim" and board["lan"] is None:
        c.fail("lan", "a lan board must describe its Ethernet PHY")
    v = board["image"]["micropython"].split(".")
    if len(v) != 3 or not all(x.isdigit() for x in v):
        c.fail(
            "image.micropython", "expected a release X.Y.Z, got %r" % board["image"]["micropython"]
        )
    if board["rtc"] is not None and board["rtc"]["chip"] not in _RTC_CHIPS:
        c.fail("rtc.chip", "must be one of %s" % "/".join(_RTC_CHIPS))
    check_sensors(board, board["sensors"], c.fail)
    out = dict(board)
    out["heap"] = parse_heap(board["heap"])
    return out


def check_sensors(board, names, fail, key="sensors"):
    # A list of known, distinct sensor names whose bus the board has; fail(key, msg).
    if not isinstance(names, list):
        fail(key, "expected a list of sensor names, got %r" % (names,))
    uart = None
    for i, n in enumerate(names):
        where = "%s[%d]" % (key, i)
        bus = SENSOR_BUS.get(n) if isinstance(n, str) else None
        if bus is None:
            fail(where, "unknown sensor %r (known: %s)" % (n, ", ".join(sorted(SENSOR_BUS))))
        if names.index(n) != i:
            fail(where, "%s named twice" % n)
        if board[bus] is None:
            fail(where, "%s needs the board's %s, which is null" % (n, bus))
        if bus == "uart":
            if uart is not None:
                fail(where, "%s and %s would share the one UART" % (uart, n))
            uart = n


def load(path):
    # Read and validate a board file. Errors name the file or the board and the key.
    try:
        with open(path) as f:
            data = json.load(f)
    except OSError as e:
        raise BoardError("board %s: cannot read: %s" % (path, e))
    except ValueError as e:
        raise BoardError("board %s: not valid JSON: %s" % (path, e))
    return validate(data, path)
