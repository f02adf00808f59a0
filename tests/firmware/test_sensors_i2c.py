# The I2C sensor drivers (lamp.sensors.bme280, bh1750, scd4x) against the byte-level chip
# models in lamp.hal.simdev, through the sim hal's I2C bus: what they decode, and how each
# fault the models inject reaches the caller (docs/sensors.md).
import random

from fw import araises, sim_hal
from lamp import clock
from lamp.hal.simdev.bh1750 import BH1750Model
from lamp.hal.simdev.bme280 import CAL, BME280Model, weather
from lamp.hal.simdev.scd4x import SERIAL, SCD4xModel, air
from lamp.sensors import SensorError
from lamp.sensors.bh1750 import BH1750
from lamp.sensors.bme280 import BME280, compensate
from lamp.sensors.scd4x import SCD4x

T = 1795600000  # 2026-11-25T09:46:40Z
HOUR = 3600000


def bus(addr, model, start=T):
    clock.setup(start=start, manual=True)  # sleep_ms steps time at once
    hal = sim_hal()
    hal.i2c().attach(addr, model)
    return hal


def near(got, want, tol):
    assert abs(got - want) <= tol, (got, want)


def test_bme280_compensation_matches_the_bmp280_worked_example():
    # Same T/P trimming and formulas as the BMP280 datasheet's example (sec. 3.12).
    t, p, _ = compensate(CAL, 519888, 415148, 0)
    assert t == 2508 and p >> 8 == 100653


async def test_bme280_decodes_the_weather_the_model_encoded():
    model = BME280Model(noise=False)
    hal = bus(0x76, model)
    drv = BME280(hal.i2c())
    await drv.start()
    assert drv.cal == CAL  # dig_H4/H5 unpacked from their shared nibbles
    for _ in range(8):  # through a day: 3-hour steps
        t, rh, p = weather(clock.now())
        got = await drv.read()
        near(got[0], t * 10, 1)
        near(got[1], rh * 10, 1)
        near(got[2], p * 10, 1)
        clock.get().advance_ms(3 * HOUR)
    assert model.regs[0xF2] == 0x01 and model.regs[0xF4] == 0x24  # x1, back asleep


async def test_bme280_address_option_and_a_wrong_chip():
    hal = bus(0x77, BME280Model())
    await BME280(hal.i2c(), 0x77).start()
    bmp = BME280Model()
    bmp.regs[0xD0] = 0x58  # a BMP280: no humidity
    hal = bus(0x76, bmp)
    e = await araises(SensorError, BME280(hal.i2c()).start())
    assert "0x58" in str(e), e


async def test_bme280_skipped_value_and_lost_configuration_are_sensor_errors():
    model = BME280Model()
    hal = bus(0x76, model)
    drv = BME280(hal.i2c())
    await araises(SensorError, drv.read())  # not started
    await drv.start()
    model.fault = "checksum"  # temperature reads 0x80000
    await araises(SensorError, drv.read())
    model.fault = "disconnect"
    await araises(OSError, drv.read())
    model.fault = None  # back, but power-cycled: ctrl_hum is 0, humidity skipped
    await araises(SensorError, drv.read())
    await drv.start()
    assert len(await drv.read()) == 3


async def test_bme280_nack_is_oserror_19():
    model = BME280Model()
    hal = bus(0x76, model)
    drv = BME280(hal.i2c())
    hal.i2c().nack.add(0x76)
    assert (await araises(OSError, drv.start())).errno == 19
    hal.i2c().nack.clear()
    await drv.start()
    model.fault = "nack"
    assert (await araises(OSError, drv.read())).errno == 19


async def test_bme280_stuck_repeats_and_garbage_is_a_sensor_error_or_a_number():
    model = BME280Model()
    hal = bus(0x76, model)
    drv = BME280(hal.i2c())
    await drv.start()
    first = await drv.read()
    model.fault = "stuck"
    clock.get().advance_ms(6 * HOUR)
    assert await drv.read() == first
    model.fault = None
    assert await drv.read() != first
    random.seed(5)
    model.fault = "garbage"
    for _ in range(10):  # never an exception other than SensorError
        try:
            assert len(await drv.read()) == 3
        except SensorError:
            pass
    await araises(SensorError, drv.start())  # a random chip id


async def test_bh1750_reads_the_hal_light_in_tenths_of_lux():
    hal = bus(0x23, None)
    model = BH1750Model(hal)
    hal.i2c().attach(0x23, model)
    drv = BH1750(hal.i2c())
    t0 = clock.mono_ms()
    await drv.start()
    assert model.on and model.mode == 0x10
    assert clock.mono_ms() - t0 >= 180  # the first result's conversion time
    for lux in (0.0, 0.5, 12.3, 1234.5, 54612.0):
        hal.lux = lux
        (got,) = await drv.read()
        near(got, lux * 10, 9)  # one count is 1/1.2 lx
    hal.lux = 100000.0  # the count saturates at 0xFFFF
    assert await drv.read() == (546125,)


async def test_bh1750_without_a_hal_follows_day_and_night():
    model = BH1750Model()
    hal = bus(0x23, model, start=1795564800)  # 2026-11-25T00:00Z
    drv = BH1750(hal.i2c())
    await drv.start()
    assert await drv.read() == (0,)
    clock.get().advance_ms(12 * HOUR)
    assert (await drv.read())[0] > 100000  # > 10 klx at noon


async def test_bh1750_faults():
    model = BH1750Model()
    hal = bus(0x23, model, start=1795564800 + 43200)
    drv = BH1750(hal.i2c())
    await drv.start()
    noon = await drv.read()
    model.fault = "checksum"  # nothing to corrupt: the chip has no checksum
    assert await drv.read() == noon
    model.fault = "stuck"
    clock.get().advance_ms(2 * HOUR)
    assert await drv.read() == noon
    model.fault = "nack"
    assert (await araises(OSError, drv.read())).errno == 19
    model.fault = "disconnect"
    await araises(OSError, drv.read())
    model.fault = None  # powered down by the outage: 0 until started again
    assert await drv.read() == (0,)
    await drv.start()
    assert (await drv.read())[0] > 0
    random.seed(1)
    model.fault = "garbage"  # no checksum: any count decodes, in FIELDS' range
    (got,) = await drv.read()
    assert 0 <= got <= BH1750.FIELDS[0][3]


async def test_scd4x_reads_serial_then_a_sample_every_5_s():
    model = SCD4xModel(noise=False)
    hal = bus(0x62, model)
    drv = SCD4x(hal.i2c())
    t0 = clock.mono_ms()
    await drv.start()
    assert clock.mono_ms() - t0 >= 500  # stop_periodic_measurement's 500 ms
    assert drv.serial == (SERIAL[0] << 32) | (SERIAL[1] << 16) | SERIAL[2]
    assert model.measuring
    assert await drv.read() is None  # no sample during the first 5 s
    await clock.sleep_ms(5000)
    co2, t, rh = air(clock.now())
    got = await drv.read()
    assert got[0] == co2
    near(got[1], t * 10, 1)
    near(got[2], rh * 10, 1)
    assert await drv.read() is None  # consumed: the next one is 5 s away


async def test_scd4x_start_stops_a_sensor_left_measuring():
    model = SCD4xModel()
    model.measuring = True  # a warm reboot: it NACKs get_serial_number in this state
    hal = bus(0x62, model)
    await SCD4x(hal.i2c()).start()


async def test_scd4x_crc_errors_are_sensor_errors():
    model = SCD4xModel()
    hal = bus(0x62, model)
    drv = SCD4x(hal.i2c())
    model.fault = "checksum"
    e = await araises(SensorError, drv.start())
    assert "CRC" in str(e), e
    model.fault = None
    await drv.start()
    await clock.sleep_ms(5000)
    model.fault = "checksum"
    await araises(SensorError, drv.read())
    random.seed(3)
    model.fault = "garbage"
    await araises(SensorError, drv.read())


async def test_scd4x_nack_stuck_and_disconnect():
    model = SCD4xModel()
    hal = bus(0x62, model)
    drv = SCD4x(hal.i2c())
    hal.i2c().nack.add(0x62)
    assert (await araises(OSError, drv.start())).errno == 19
    hal.i2c().nack.clear()
    await drv.start()
    await clock.sleep_ms(5000)
    first = await drv.read()
    model.fault = "stuck"
    for _ in range(3):
        clock.get().advance_ms(2 * HOUR)
        assert await drv.read() == first
    model.fault = "disconnect"
    await araises(OSError, drv.read())
    model.fault = None  # back idle after the power cut: no sample until started
    await clock.sleep_ms(5000)
    assert await drv.read() is None
    await drv.start()
    await clock.sleep_ms(5000)
    assert await drv.read() != first
