# lamp.rtc drivers against the byte-level chip models in lamp.hal.simdev, and how the
# clock uses them at boot: a plausible chip time makes the clock valid, a chip that lost
# power or is missing leaves it invalid (photocell fallback), never a crash.
from fw import load_board, raises, sim_hal
from lamp import clock, rtc
from lamp.hal.sim import SimI2C
from lamp.hal.simdev import rtc_model
from lamp.hal.simdev.ds3231 import DS3231Model
from lamp.hal.simdev.pcf8563 import PCF8563Model

T = 1795600000  # 2026-11-25T09:46:40Z, a Wednesday
CHIPS = ("ds3231", "pcf8563")


class Now:
    # The models' time source, stepped by hand.
    def __init__(self, t=T):
        self.t = t

    def __call__(self):
        return self.t


def setup(chip, now=None):
    i2c = SimI2C()
    addr, model = rtc_model(chip, now or Now())
    i2c.attach(addr, model)
    return i2c, model, rtc.open({"rtc": {"chip": chip}}, i2c)


def test_fresh_chip_flags_its_time_invalid():
    for chip in CHIPS:
        _, _, drv = setup(chip)
        assert drv.read() is None, chip


def test_write_then_read_round_trips_and_clears_the_flag():
    for chip in CHIPS:
        now = Now()
        _, model, drv = setup(chip, now)
        drv.write(T)
        assert drv.read() == T, chip
        now.t += 3725  # the chip keeps counting
        assert drv.read() == T + 3725, chip
        flag = model.osf if chip == "ds3231" else model.vl
        assert not flag, chip


def test_registers_hold_bcd_as_the_datasheets_say():
    now = Now()
    _, ds, drv = setup("ds3231", now)
    drv.write(T)
    # seconds..year: 40 s, 46 min, 09 h, day 3 (Wednesday, Monday = 1), 25, 11, 26
    ds.read(0)  # a read transaction latches the counters into the registers
    assert ds.regs[0x00:0x07] == b"\x40\x46\x09\x03\x25\x11\x26"
    _, pcf, drv = setup("pcf8563", now)
    drv.write(T)
    pcf.read(0)
    # VL_seconds..years: VL clear, days 25, weekday 3 (Sunday = 0), month 11, year 26
    assert pcf.regs[0x02:0x09] == b"\x40\x46\x09\x25\x03\x11\x26"


def test_power_loss_makes_read_none_until_written():
    for chip in CHIPS:
        _, model, drv = setup(chip)
        drv.write(T)
        model.lose_power()
        assert drv.read() is None, chip
        drv.write(T + 10)
        assert drv.read() == T + 10, chip


def test_every_weekday_and_month_end_round_trips():
    for chip in CHIPS:
        _, _, drv = setup(chip)
        for t in range(T, T + 9 * 86400, 86400 + 3599):
            drv.write(t)
            assert drv.read() == t, (chip, t)
        for t in (1709164800, 1735689599, 4102444799):  # 2024-02-29, 2024-12-31 23:59:59
            drv.write(t)
            assert drv.read() == t, (chip, t)


def test_century_bit_is_written_for_2100():
    for chip in CHIPS:
        _, model, drv = setup(chip)
        drv.write(4102444800)  # 2100-01-01
        assert drv.read() == 4102444800, chip
        month = model.regs[0x05] if chip == "ds3231" else model.regs[0x07]
        assert month & 0x80, chip


def test_garbage_registers_read_as_none():
    for chip in CHIPS:
        i2c, model, drv = setup(chip)
        drv.write(T)
        base = 0x00 if chip == "ds3231" else 0x02
        i2c.writeto_mem(drv.addr, base + 1, b"\x7a")  # minutes "7a": not BCD
        assert drv.read() is None, chip


def test_ds3231_twelve_hour_mode_is_understood():
    i2c, _, drv = setup("ds3231")
    drv.write(T)  # 09:46:40
    # 12-hour mode (bit 6), PM (bit 5), 09: 21:46:40. The model keeps 24-hour time only,
    # so it holds these registers as written, which is what the driver must decode.
    i2c.writeto_mem(0x68, 0x02, b"\x69")
    assert drv.read() == T + 12 * 3600


def test_missing_chip_raises_oserror_19():
    for chip in CHIPS:
        i2c, _, drv = setup(chip)
        i2c.nack.add(drv.addr)
        e = raises(OSError, drv.read)
        assert e.args[0] == 19


def test_open_follows_the_board_file():
    i2c = SimI2C()
    assert rtc.open({"rtc": None}, i2c) is None
    assert isinstance(rtc.open({"rtc": {"chip": "ds3231"}}, i2c), rtc.DS3231)
    assert isinstance(rtc.open({"rtc": {"chip": "pcf8563"}}, i2c), rtc.PCF8563)
    assert "rv3028" in str(raises(ValueError, rtc.open, {"rtc": {"chip": "rv3028"}}, i2c))
    assert rtc.open(load_board("sim"), i2c) is not None


def test_models_follow_the_clock_by_default():
    clock.setup(start=T, manual=True)
    m = DS3231Model()
    assert m.time() == T
    clock.get().advance_ms(5000)
    assert m.time() == T + 5 and PCF8563Model().time() == T + 5


def test_boot_takes_a_plausible_chip_time():
    c = clock.setup(start=0, manual=True)
    hw = sim_hal()
    addr, model = rtc_model("ds3231", Now())
    hw.i2c().attach(addr, model)
    drv = rtc.open(hw.board, hw.i2c())
    drv.write(T)
    assert clock.boot(hw, drv) == "rtc"
    assert clock.valid() and clock.source() == "rtc" and clock.now() == T
    c.advance_ms(1000)
    assert clock.now() == T + 1


def test_boot_with_flat_battery_or_missing_chip_leaves_clock_invalid():
    for fault in ("osf", "nack", "implausible"):
        clock.setup(start=0, manual=True)
        hw = sim_hal()
        addr, model = rtc_model("pcf8563", Now())
        hw.i2c().attach(addr, model)
        drv = rtc.open({"rtc": {"chip": "pcf8563"}}, hw.i2c())
        drv.write(T)
        if fault == "osf":
            model.lose_power()
        elif fault == "nack":
            hw.i2c().nack.add(addr)
        else:
            drv.write(946684800 + 86400)  # 2000-01-02: a chip someone set by hand
        assert clock.boot(hw, drv) is None, fault
        assert not clock.valid() and clock.source() is None, fault


def test_ntp_time_is_written_to_the_chip_and_marked_in_rtc_memory():
    clock.setup(start=0, manual=True)
    hw = sim_hal()
    addr, model = rtc_model("ds3231", Now())
    hw.i2c().attach(addr, model)
    drv = rtc.open(hw.board, hw.i2c())
    assert clock.boot(hw, drv) is None  # fresh chip: OSF set
    assert clock.set_time(T, "ntp") is True
    assert drv.read() == T and clock.valid() and clock.source() == "ntp"
    assert hw.rtc_memory()[:4] == b"LTC1"
    hw.i2c().nack.add(addr)
    assert clock.set_time(T + 60, "ntp") is False  # chip gone: the clock is still set
    assert clock.now() == T + 60


def test_soft_reset_keeps_the_clock_valid_through_rtc_memory():
    # Before the reset: NTP set the clock. The hal object stands for RTC slow memory.
    clock.setup(start=0, manual=True)
    hw = sim_hal()
    clock.boot(hw, None)
    clock.set_time(T, "ntp")
    hw.rtc_memory(hw.rtc_memory()[:8] + b"app")  # other users keep bytes 8..
    # After: the port RTC kept running; no chip, no network yet.
    clock.setup(start=T + 30, manual=True)
    assert clock.boot(hw, None) == "mem" and clock.valid() and clock.source() == "mem"
    # A clock that reads earlier than the mark did not keep running: not trusted.
    clock.setup(start=T - 3600, manual=True)
    assert clock.boot(hw, None) is None and not clock.valid()
    assert hw.rtc_memory()[8:] == b"app"
