# The UART particulate drivers (lamp.sensors.pms5003, lamp.sensors.sds011) against bytes
# fed to a SimUART, and against the byte-level sim models (lamp.hal.simdev): framing,
# resynchronisation, checksums, the datasheets' command bytes, and the models' faults.
import struct

from fw import araises
from lamp import clock
from lamp.hal.sim import SimUART
from lamp.hal.simdev.pms5003 import PMS5003Model
from lamp.hal.simdev.sds011 import SDS011Model
from lamp.sensors import SensorError
from lamp.sensors.pms5003 import PMS5003
from lamp.sensors.sds011 import SDS011

T = 1795600000  # 2026-11-25T09:46:40Z


def pms(pm1, pm25, pm10, bad=False):
    # CF=1 words differ from the atmospheric ones, which the driver must return.
    f = bytearray(32)
    words = (pm1 + 1, pm25 + 2, pm10 + 3, pm1, pm25, pm10, 900, 300, 60, 7, 2, 1, 0)
    struct.pack_into(">BBH13H", f, 0, 0x42, 0x4D, 28, *words)
    struct.pack_into(">H", f, 30, (sum(f[:30]) + (1 if bad else 0)) & 0xFFFF)
    return bytes(f)


def sds(pm25_x10, pm10_x10, bad=False):
    f = bytearray(struct.pack("<BBHHH", 0xAA, 0xC0, pm25_x10, pm10_x10, 0xA160))
    f.append((sum(f[2:8]) + (1 if bad else 0)) & 0xFF)
    f.append(0xAB)
    return bytes(f)


def sds_cmd(d1, d2=0, d3=0):
    # The protocol's examples (V1.3 sec. 2), written out: data 1..15, checksum, tail.
    body = bytes((d1, d2, d3)) + bytes(10) + b"\xff\xff"
    return b"\xaa\xb4" + body + bytes((sum(body) & 0xFF, 0xAB))


def setup(cls, passive=False, rxbuf=512):
    clock.setup(start=T, manual=True)
    uart = SimUART(rxbuf)
    return uart, cls(uart, passive=passive)


async def test_pms_decodes_the_atmospheric_pm_of_a_frame():
    uart, drv = setup(PMS5003)
    uart.feed(pms(5, 12, 20))
    assert await drv.read() == (5, 12, 20)
    assert (drv.frames, drv.bad) == (1, 0)
    assert [f[0] for f in PMS5003.FIELDS] == ["pm1", "pm2_5", "pm10"]


async def test_sds_decodes_tenths_little_endian():
    uart, drv = setup(SDS011)
    uart.feed(sds(123, 4567))
    assert await drv.read() == (123, 4567)
    assert [f[0] for f in SDS011.FIELDS] == ["pm2_5_x10", "pm10_x10"]


async def test_a_frame_split_across_reads_is_assembled():
    for cls, frame, want in ((PMS5003, pms(1, 2, 3), (1, 2, 3)), (SDS011, sds(9, 8), (9, 8))):
        uart, drv = setup(cls)
        for b in frame[:-1]:
            uart.feed(bytes((b,)))
            assert await drv.read() is None
        uart.feed(frame[-1:])
        assert await drv.read() == want
        assert await drv.read() is None  # nothing new: no stale repeat


async def test_no_bytes_reads_none():
    for cls in (PMS5003, SDS011):
        _, drv = setup(cls)
        assert await drv.read() is None
        assert (drv.frames, drv.bad) == (0, 0)


async def test_read_returns_the_newest_of_several_frames():
    uart, drv = setup(PMS5003)
    uart.feed(pms(1, 1, 1) + pms(2, 2, 2) + pms(3, 3, 3))
    assert await drv.read() == (3, 3, 3)
    assert drv.frames == 3


async def test_a_good_frame_right_after_garbage_is_not_lost():
    # Noise, a lone header byte, and a false start (42 4D with a real length) that runs
    # into the good frame: only the false start is bad, the frame inside it is found.
    uart, drv = setup(PMS5003)
    uart.feed(b"\x00\x42\x42\x13\x37\x4d" + b"BM\x00\x1c\x01\x02" + pms(4, 5, 6))
    assert await drv.read() == (4, 5, 6)
    assert (drv.frames, drv.bad) == (1, 1)
    uart, drv = setup(SDS011)
    uart.feed(b"\xab\xaa\x00\xaa\xc0\x01\x02" + sds(70, 80))
    assert await drv.read() == (70, 80)
    assert (drv.frames, drv.bad) == (1, 1)


async def test_a_length_no_frame_has_is_dropped_at_once():
    uart, drv = setup(PMS5003)
    uart.feed(b"BM\x00\x99")  # no need to wait for 153 more bytes
    await araises(SensorError, drv.read())
    assert drv.bad == 1
    uart.feed(pms(1, 2, 3))
    assert await drv.read() == (1, 2, 3)


async def test_a_checksum_failure_is_counted_and_skipped():
    for cls, bad, good, want in (
        (PMS5003, pms(9, 9, 9, bad=True), pms(1, 2, 3), (1, 2, 3)),
        (SDS011, sds(99, 99, bad=True), sds(10, 20), (10, 20)),
    ):
        uart, drv = setup(cls)
        uart.feed(bad + good)
        assert await drv.read() == want
        assert (drv.frames, drv.bad) == (1, 1)


async def test_only_bad_frames_raise_sensor_error_then_reading_recovers():
    for cls, bad, good, want in (
        (PMS5003, pms(9, 9, 9, bad=True), pms(1, 2, 3), (1, 2, 3)),
        (SDS011, sds(99, 99, bad=True), sds(10, 20), (10, 20)),
    ):
        uart, drv = setup(cls)
        uart.feed(bad + bad)
        await araises(SensorError, drv.read())
        assert drv.bad == 2
        uart.feed(good)
        assert await drv.read() == want


async def test_sds_wrong_tail_byte_is_bad():
    uart, drv = setup(SDS011)
    f = bytearray(sds(1, 2))
    f[9] = 0xAC
    uart.feed(f + sds(3, 4))
    assert await drv.read() == (3, 4)
    assert drv.bad == 1


async def test_command_answers_carry_no_measurement_and_are_skipped():
    uart, drv = setup(PMS5003)
    uart.feed(b"BM\x00\x04\xe1\x00\x01\x74" + pms(1, 2, 3) + b"BM\x00\x04\xe4\x00\x01\x77")
    assert await drv.read() == (1, 2, 3)
    assert (drv.frames, drv.bad) == (1, 0)
    uart, drv = setup(SDS011)
    reply = bytearray(b"\xaa\xc5\x02\x01\x01\x00\xa1\x60\x00\xab")
    reply[8] = sum(reply[2:8]) & 0xFF
    uart.feed(reply)
    assert await drv.read() is None
    assert (drv.frames, drv.bad) == (0, 0)


async def test_pms_commands_are_the_datasheet_bytes():
    # Appendix II: 42 4D CMD DATAH DATAL LRCH LRCL.
    uart, drv = setup(PMS5003, passive=True)
    await drv.start()
    wake, passive = bytes.fromhex("424de400010174"), bytes.fromhex("424de100000170")
    assert uart.sent == wake + passive
    uart.sent[:] = b""
    uart.feed(pms(1, 2, 3))  # already waiting: the answer is taken at once
    assert await drv.read() == (1, 2, 3)
    assert uart.sent == bytes.fromhex("424de200000171")
    uart.sent[:] = b""
    await drv.power(False)
    assert uart.sent == bytes.fromhex("424de400000173")
    uart, drv = setup(PMS5003)
    await drv.start()
    assert uart.sent == wake + bytes.fromhex("424de100010171")


async def test_sds_commands_are_the_protocol_bytes():
    uart, drv = setup(SDS011, passive=True)
    await drv.start()
    assert uart.sent == sds_cmd(6, 1, 1) + sds_cmd(2, 1, 1)
    # The protocol's own example for "set query mode", checksum 0x02.
    assert sds_cmd(2, 1, 1) == bytes.fromhex("aab402010100000000000000000000ffff02ab")
    uart.sent[:] = b""
    uart.feed(sds(5, 6))
    assert await drv.read() == (5, 6)
    assert uart.sent == bytes.fromhex("aab404000000000000000000000000ffff02ab")
    uart.sent[:] = b""
    await drv.power(False)
    assert uart.sent == bytes.fromhex("aab406010000000000000000000000ffff05ab")
    uart, drv = setup(SDS011)
    await drv.start()
    assert uart.sent == sds_cmd(6, 1, 1) + sds_cmd(2, 1, 0)


async def test_passive_read_without_answer_raises_oserror_after_a_second():
    for cls in (PMS5003, SDS011):
        _, drv = setup(cls, passive=True)
        t0 = clock.mono_ms()
        e = await araises(OSError, drv.read())
        assert e.args[0] == 110, cls
        assert 1000 <= clock.mono_ms() - t0 <= 1100


async def test_uart_overflow_drops_the_oldest_and_the_driver_resyncs():
    # 20 frames into a 500-byte buffer: the first 140 bytes (4 frames and 12 bytes of the
    # fifth) are dropped. The torn fifth is not a frame, the newest survives.
    uart, drv = setup(PMS5003, rxbuf=500)
    for i in range(20):
        uart.feed(pms(i, i + 1, i + 2))
    assert uart.overflows == 140
    assert await drv.read() == (19, 20, 21)
    assert (drv.frames, drv.bad) == (15, 0)


async def test_pms_model_streams_a_daily_cycle_in_active_mode():
    uart, drv = setup(PMS5003)
    now = [T - T % 86400 + 3 * 3600]  # 03:00 UTC
    model = PMS5003Model(uart, now=lambda: now[0])
    await drv.start()
    assert await drv.read() is None  # the answers to wake and mode, no frame
    model.tick()
    night = await drv.read()
    now[0] += 5 * 3600  # 08:00: rush hour
    model.tick()
    rush = await drv.read()
    assert night[1] < 12 and rush[1] > 30, (night, rush)
    assert night[0] <= night[1] <= night[2]
    assert (drv.frames, drv.bad) == (2, 0)


async def test_pms_model_answers_in_passive_mode_and_sleeps():
    uart, drv = setup(PMS5003, passive=True)
    model = PMS5003Model(uart, now=lambda: T)
    await drv.start()
    assert model.passive and not model.asleep
    model.tick()  # passive: nothing unasked
    assert uart.any() == 16  # the two answers to the commands
    v = await drv.read()
    assert v is not None and (drv.frames, drv.bad) == (1, 0)
    await drv.power(False)
    assert model.asleep
    await araises(OSError, drv.read())  # a sleeping sensor does not answer
    await drv.power(True)
    assert await drv.read() is not None


async def test_model_faults_as_the_driver_sees_them():
    for model_cls, cls in ((PMS5003Model, PMS5003), (SDS011Model, SDS011)):
        uart, drv = setup(cls)
        model = model_cls(uart, now=lambda: T, seed=7)
        model.fault = "checksum"
        model.tick()
        await araises(SensorError, drv.read())
        model.fault = "garbage"
        for _ in range(20):
            model.tick()
            assert await drv.read() is not None  # never a frame lost to the noise
        model.fault = "stuck"
        model.tick()
        first = await drv.read()
        for _ in range(5):
            model.tick()
            assert await drv.read() == first
        model.fault = "partial"
        model.tick()
        assert await drv.read() is None  # half a frame
        model.tick()
        assert await drv.read() is not None
        model.fault = "disconnect"
        uart.rx[:] = b""
        drv._n = 0
        model.tick()
        assert await drv.read() is None
        assert drv.frames == 27, (cls, drv.frames)


async def test_sds_model_query_mode_and_sleep():
    uart, drv = setup(SDS011, passive=True)
    model = SDS011Model(uart, now=lambda: T)
    await drv.start()
    assert model.passive and not model.asleep
    model.tick()
    pm25, pm10 = await drv.read()
    assert 0 < pm25 <= pm10 + 10
    assert (drv.frames, drv.bad) == (1, 0)  # the two C5 replies were skipped
    await drv.power(False)
    assert model.asleep
    await araises(OSError, drv.read())  # a sleeping sensor does not answer
