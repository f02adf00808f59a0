# The sim board keeps what a pole would show observable and lets tests inject what it
# would sense, at byte level for the buses.
from fw import raises, sim_hal


class _Registers:
    # A minimal I2C register device: a pointer byte, then data; reads auto-increment.
    def __init__(self):
        self.regs = bytearray(256)
        self.ptr = 0

    def write(self, data):
        self.ptr = data[0]
        for b in data[1:]:
            self.regs[self.ptr] = b
            self.ptr = (self.ptr + 1) & 0xFF

    def read(self, n):
        out = bytes(self.regs[(self.ptr + i) & 0xFF] for i in range(n))
        self.ptr = (self.ptr + n) & 0xFF
        return out


def test_duty_and_relay_are_observable():
    hal = sim_hal()
    hal.set_duty(32768)
    hal.set_relay(True)
    assert hal.duty == 32768 and hal.relay_on
    raises(ValueError, hal.set_duty, 70000)
    assert hal.duty == 32768


def test_control_pilot_voltage_round_trips_through_divider_and_adc():
    hal = sim_hal()
    # One 12-bit ADC step is ~0.8 mV at the pin, times the divider's scale of 8.
    for volts in (12.0, 9.0, 6.0, 3.0, -12.0):
        hal.cp_volts = volts
        assert abs(hal.cp_mv() - volts * 1000) <= 8, (volts, hal.cp_mv())


def test_motion_and_s0_pulses_are_injected():
    hal = sim_hal()
    assert not hal.motion()
    hal.motion_level = True
    assert hal.motion()
    hal.pulses += 3
    hal.pulses += 1
    assert hal.s0_count() == 4


def test_i2c_register_reads_and_writes_reach_the_device_model():
    hal = sim_hal()
    bus = hal.i2c()
    dev = _Registers()
    bus.attach(0x76, dev)
    assert bus.scan() == [0x76]
    bus.writeto_mem(0x76, 0xF4, b"\x27\x55")
    assert dev.regs[0xF4] == 0x27 and dev.regs[0xF5] == 0x55
    assert bus.readfrom_mem(0x76, 0xF4, 2) == b"\x27\x55"
    buf = bytearray(1)
    bus.readfrom_mem_into(0x76, 0xF5, buf)
    assert buf == b"\x55"


def test_i2c_nack_raises_enodev_like_the_esp32():
    bus = sim_hal().i2c()
    e = raises(OSError, bus.readfrom_mem, 0x23, 0, 2)
    assert e.args[0] == 19
    bus.attach(0x23, _Registers())
    bus.nack.add(0x23)
    assert raises(OSError, bus.writeto, 0x23, b"\x10").args[0] == 19
    bus.nack.discard(0x23)
    assert bus.writeto(0x23, b"\x10") == 1


def test_uart_delivers_fed_bytes_and_drops_overflow_oldest_first():
    uart = sim_hal().uart()
    assert uart.read() is None
    uart.feed(b"\x42\x4d\x00")
    assert uart.any() == 3
    assert uart.read(2) == b"\x42\x4d"
    assert uart.read() == b"\x00"
    uart.feed(bytes(range(256)) * 3)
    assert uart.any() == 512 and uart.overflows == 256
    assert uart.read(1) == bytes([0])  # the oldest 256 bytes were dropped
    uart.write(b"\xaa\xb4")
    assert uart.sent == b"\xaa\xb4"


def test_virtual_node_board_carries_its_rtc_chip_and_sensor_models():
    hal = sim_hal(devices=True)
    # DS3231 0x68, BME280 0x76, BH1750 0x23, SCD4x 0x62 on I2C; the PMS5003 on the UART
    assert hal.i2c().scan() == [0x23, 0x62, 0x68, 0x76]
    assert hal.rtc_chip is not None
    pms = hal.models["pms5003"]
    assert hal.uart().model is pms and pms.live
    assert sorted(hal.models) == ["bh1750", "bme280", "pms5003", "scd4x"]
    assert sim_hal().i2c().scan() == [] and sim_hal().models == {}


def test_reset_cause_and_rtc_memory():
    hal = sim_hal(reset_cause="wdt")
    assert hal.reset_cause() == "wdt"
    hal.rtc_memory(b"level=40")
    assert hal.rtc_memory() == b"level=40"
