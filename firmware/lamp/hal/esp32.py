# The real board: ESP32 / ESP32-S3 peripherals through MicroPython's machine module.
# The only module (with network code added later) that imports machine/esp32/network.
import machine

from lamp.hal.base import HalBase

_CAUSES = {
    machine.PWRON_RESET: "power_on",
    machine.HARD_RESET: "hard",
    machine.WDT_RESET: "wdt",
    machine.DEEPSLEEP_RESET: "deep_sleep",
    machine.SOFT_RESET: "soft",
}


class Esp32Hal(HalBase):
    def __init__(self, board):
        super().__init__(board)
        p = board["pwm"]
        # Duty 0 from the first instant: the application decides the level, not reset state.
        self._pwm = machine.PWM(machine.Pin(p["pin"]), freq=p["freq"], duty_u16=0)
        self._relay = self._out("relay")
        self._led = self._out("status_led")
        pir = board["pir"]
        self._pir = machine.Pin(pir["pin"], machine.Pin.IN) if pir else None
        self._pulses = 0
        s0 = board["s0"]
        if s0:
            # S0 outputs (EN 62053-31) pull the line low for >= 30 ms per impulse.
            self._s0 = machine.Pin(s0["pin"], machine.Pin.IN, machine.Pin.PULL_UP)
            self._s0.irq(self._on_pulse, machine.Pin.IRQ_FALLING)
        cp = board["cp_adc"]
        self._adc = None
        if cp:
            self._adc = machine.ADC(machine.Pin(cp["pin"]), atten=machine.ADC.ATTN_11DB)
        self._i2c = None
        self._uart = None
        self._wdt = None

    def _out(self, key):
        sect = self.board[key]
        if sect is None:
            return None
        pin = machine.Pin(sect["pin"], machine.Pin.OUT)
        pin.value(0 if sect["active_high"] else 1)
        return pin

    def _on_pulse(self, _pin):
        self._pulses += 1

    def _write_duty(self, duty):
        self._pwm.duty_u16(duty)

    def _write_relay(self, on):
        if self._relay is not None:
            self._relay.value(on if self.board["relay"]["active_high"] else not on)

    def set_status_led(self, on):
        if self._led is not None:
            self._led.value(on if self.board["status_led"]["active_high"] else not on)

    def motion(self):
        if self._pir is None:
            return False
        return self._pir.value() == (1 if self.board["pir"]["active_high"] else 0)

    def s0_count(self):
        return self._pulses

    def adc_mv(self):
        if self._adc is None:
            return 0
        return self._adc.read_uv() // 1000

    def i2c(self):
        if self._i2c is None:
            b = self.board["i2c"]
            self._i2c = machine.I2C(
                b["id"], scl=machine.Pin(b["scl"]), sda=machine.Pin(b["sda"]), freq=b["freq"]
            )
        return self._i2c

    def uart(self, baudrate=9600):
        if self._uart is None:
            u = self.board["uart"]
            self._uart = machine.UART(u["id"], baudrate=baudrate, tx=u["tx"], rx=u["rx"])
        return self._uart

    def wdt_start(self, timeout_ms):
        self._wdt = machine.WDT(timeout=timeout_ms)

    def wdt_feed(self):
        if self._wdt is not None:
            self._wdt.feed()

    def reset_cause(self):
        return _CAUSES.get(machine.reset_cause(), "unknown")

    def reset(self):
        machine.reset()

    def rtc_memory(self, data=None):
        rtc = machine.RTC()
        if data is not None:
            rtc.memory(data)
        return rtc.memory()
