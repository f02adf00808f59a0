"""The I2C sensor drivers in MicroPython against the datasheets' floating-point formulas.

CPython draws random calibrations and raw readings, encodes them as the chips would
(BME280 register dumps with the dig_H4/H5 nibble packing, SCD4x frames with their CRC-8,
BH1750 counts), computes the expected physical values with the float formulas (BME280
datasheet sec. 8.1, SCD4x datasheet sec. 3.5.2, BH1750 count / 1.2) and streams them as
JSON lines; tests/firmware/check_sensors.py feeds each to its driver inside MicroPython
under the pole's heap budget. The test fails unless every vector was checked.
"""

from __future__ import annotations

import json
import random
import re
import struct
from pathlib import Path

import pytest

import mpharness

CHECK = Path(__file__).parent / "firmware" / "check_sensors.py"
N_BME280 = 400
N_SCD4X = 300
N_SERIAL = 40
N_BH1750 = 200


def crc8_sensirion(data: bytes) -> int:
    # Written from the datasheet's description (poly x^8 + x^5 + x^4 + 1, init 0xFF), by
    # table, not the firmware's bitwise loop.
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = ((c << 1) ^ 0x31 if c & 0x80 else c << 1) & 0xFF
        table.append(c)
    crc = 0xFF
    for b in data:
        crc = table[crc ^ b]
    return crc


def test_oracle_crc_matches_the_datasheet_example():
    assert crc8_sensirion(b"\xbe\xef") == 0x92  # SCD4x datasheet sec. 3.11


def bme280_float(cal: dict, adc_t: int, adc_p: int, adc_h: int) -> tuple[float, float, float]:
    # BME280 datasheet sec. 8.1, double precision: (degC, Pa, %RH).
    v1 = (adc_t / 16384.0 - cal["T1"] / 1024.0) * cal["T2"]
    v2 = (adc_t / 131072.0 - cal["T1"] / 8192.0) ** 2 * cal["T3"]
    t_fine = v1 + v2
    t = t_fine / 5120.0
    v1 = t_fine / 2.0 - 64000.0
    v2 = v1 * v1 * cal["P6"] / 32768.0
    v2 = v2 + v1 * cal["P5"] * 2.0
    v2 = v2 / 4.0 + cal["P4"] * 65536.0
    v1 = (cal["P3"] * v1 * v1 / 524288.0 + cal["P2"] * v1) / 524288.0
    v1 = (1.0 + v1 / 32768.0) * cal["P1"]
    p = 1048576.0 - adc_p
    p = (p - v2 / 4096.0) * 6250.0 / v1
    v1 = cal["P9"] * p * p / 2147483648.0
    v2 = p * cal["P8"] / 32768.0
    p = p + (v1 + v2 + cal["P7"]) / 16.0
    h = t_fine - 76800.0
    h = (adc_h - (cal["H4"] * 64.0 + cal["H5"] / 16384.0 * h)) * (
        cal["H2"]
        / 65536.0
        * (1.0 + cal["H6"] / 67108864.0 * h * (1.0 + cal["H3"] / 67108864.0 * h))
    )
    h = h * (1.0 - cal["H1"] * h / 524288.0)
    return t, p, min(max(h, 0.0), 100.0)


def bme280_vector(rng: random.Random) -> list:
    # A calibration spread around production parts, and raw values giving weather the
    # chip is specified for (-40..85 degC, 300..1100 hPa).
    while True:
        cal = {
            "T1": rng.randint(26000, 29500),
            "T2": rng.randint(25500, 27500),
            "T3": rng.randint(-1100, 50),
            "P1": rng.randint(35000, 38500),
            "P2": rng.randint(-11000, -10300),
            "P3": rng.randint(2800, 3300),
            "P4": rng.randint(2000, 9000),
            "P5": rng.randint(-200, 300),
            "P6": rng.randint(-10, 0),
            "P7": rng.randint(9000, 16000),
            "P8": rng.randint(-15000, -5000),
            "P9": rng.randint(4000, 6500),
            "H1": rng.randint(0, 255),
            "H2": rng.randint(300, 420),
            "H3": rng.randint(0, 20),
            "H4": rng.randint(250, 400),
            "H5": rng.randint(-50, 100),
            "H6": rng.randint(20, 40),
        }
        adc_t = rng.randint(300000, 700000)
        adc_p = rng.randint(150000, 700000)
        adc_h = rng.randint(15000, 45000)
        t, p, h = bme280_float(cal, adc_t, adc_p, adc_h)
        if -40 <= t <= 85 and 30000 <= p <= 110000:
            break
    c = cal
    cal1 = struct.pack(
        "<HhhHhhhhhhhhBB",
        *(c[k] for k in ("T1", "T2", "T3", "P1", "P2", "P3", "P4", "P5", "P6", "P7", "P8", "P9")),
        rng.randint(0, 255),  # 0xA0: not a parameter, whatever the part holds
        c["H1"],
    )
    # 0xE4 = H4[11:4], 0xE5 = H5[3:0] << 4 | H4[3:0], 0xE6 = H5[11:4] (datasheet Table 16)
    h4, h5 = c["H4"] & 0xFFF, c["H5"] & 0xFFF
    cal2 = struct.pack("<hB", c["H2"], c["H3"]) + bytes(
        [h4 >> 4, (h5 & 0xF) << 4 | (h4 & 0xF), h5 >> 4, c["H6"] & 0xFF]
    )
    data = bytes(
        [adc_p >> 12, (adc_p >> 4) & 0xFF, (adc_p & 0xF) << 4 | rng.randint(0, 15)]
        + [adc_t >> 12, (adc_t >> 4) & 0xFF, (adc_t & 0xF) << 4 | rng.randint(0, 15)]
        + [adc_h >> 8, adc_h & 0xFF]
    )
    return ["bme280", cal1.hex(), cal2.hex(), data.hex(), adc_t, adc_p, adc_h, t, p, h]


def frame(words: list[int]) -> bytes:
    out = b""
    for w in words:
        b = w.to_bytes(2, "big")
        out += b + bytes([crc8_sensirion(b)])
    return out


def corrupt(rng: random.Random, data: bytes) -> bytes:
    # One bit flipped somewhere in the frame: a CRC-8 catches every single-bit error.
    b = bytearray(data)
    b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
    return bytes(b)


def scd4x_vector(rng: random.Random) -> list:
    status = rng.randint(0, 0xFFFF) if rng.random() < 0.5 else rng.choice([0x8000, 0x8006])
    co2, t_raw, rh_raw = rng.randint(0, 40000), rng.randint(0, 0xFFFF), rng.randint(0, 0xFFFF)
    sf, mf = frame([status]), frame([co2, t_raw, rh_raw])
    bad_status, bad_frame = rng.random() < 0.1, rng.random() < 0.1
    sf = corrupt(rng, sf) if bad_status else sf
    mf = corrupt(rng, mf) if bad_frame else mf
    ready = status & 0x7FF != 0  # sec. 3.8.2: low 11 bits 0 -> no data
    if bad_status or (ready and bad_frame):
        want: object = "crc"
    elif not ready:
        want = None
    else:  # sec. 3.5.2
        want = [co2, -45 + 175 * t_raw / 65535, 100 * rh_raw / 65535]
    return ["scd4x", sf.hex(), mf.hex(), want]


def serial_vector(rng: random.Random) -> list:
    words = [rng.randint(0, 0xFFFF) for _ in range(3)]
    data = frame(words)
    if rng.random() < 0.3:
        return ["scd4x_serial", corrupt(rng, data).hex(), None]
    return ["scd4x_serial", data.hex(), words[0] << 32 | words[1] << 16 | words[2]]


def bh1750_vector(rng: random.Random) -> list:
    count = rng.choice([0, 1, 0xFFFF, rng.randint(0, 0xFFFF)])
    return ["bh1750", count.to_bytes(2, "big").hex(), count / 1.2]


def write_vectors(path: Path, seed: int = 2026) -> dict:
    rng = random.Random(seed)
    counts = {"bme280": N_BME280, "scd4x": N_SCD4X, "scd4x_serial": N_SERIAL, "bh1750": N_BH1750}
    makers = {
        "bme280": bme280_vector,
        "scd4x": scd4x_vector,
        "scd4x_serial": serial_vector,
        "bh1750": bh1750_vector,
    }
    with path.open("w") as f:
        for kind, n in counts.items():
            for _ in range(n):
                f.write(json.dumps(makers[kind](rng)) + "\n")
    return counts


@pytest.fixture(scope="module")
def checked(tmp_path_factory):
    path = tmp_path_factory.mktemp("sensors") / "vectors.jsonl"
    counts = write_vectors(path)
    return counts, mpharness.run_vectors(CHECK, "check_vectors", "SENSOR_VECTORS", path)


def test_micropython_checked_every_vector_with_no_mismatch(checked):
    counts, out = checked
    assert mpharness.checked_count(out, "SENSORS") == (940, 0) and sum(counts.values()) == 940
    line = re.search(r"SENSORS (bme280=.*)", out)
    assert line, out
    assert {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", line.group(1))} == counts, out


def test_bme280_integer_formulas_stay_within_their_resolution(checked):
    _, out = checked
    m = re.search(r"SENSORS worst t=([\d.]+) degC p=([\d.]+) Pa h=([\d.]+) %RH", out)
    assert m, out
    t, p, h = map(float, m.groups())
    print(f"worst integer vs float: {t} degC, {p} Pa, {h} %RH")
    assert t <= 0.01 and p <= 1.0 and h <= 0.01
