# The real board: ESP32 / ESP32-S3 peripherals through MicroPython's machine module, and
# the network interface through its network module. The only module that imports
# machine/esp32/network; `make lint` checks every call here against the port's stubs
# (micropython-esp32-stubs), and the sim (lamp.hal.simnet) models the same calls.
import machine
import network

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
        self._wlan = None  # type: network.WLAN | None
        self._lan = None  # type: network.LAN | None

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

    # The network interface (lamp.net.netif keeps it up; docs/firmware.md, "Network link").
    # Stock API, ports/esp32/network_wlan.c and network_lan.c: the host name is read when
    # the interface starts (LAN.active) or connects (WLAN.connect), so it is set first.
    def net_open(self, kind, name):
        network.hostname(name)
        if kind == "wlan":
            w = network.WLAN(network.STA_IF)
            w.active(True)
            # One try per connect(): the driver's own immediate retries are what make a
            # feeder of nodes retry in lockstep; lamp.net.netif retries with jitter.
            w.config(reconnects=0)
            self._wlan = w
            return
        b = self.board["lan"]
        phy = getattr(network, "PHY_" + b["phy"], None)
        if phy is None:
            raise OSError("lan.phy: this firmware has no network.PHY_%s" % b["phy"])
        Pin = machine.Pin
        # mdc, mdio, power and ref_clk are the ESP32 port's keywords (network_lan.c
        # get_lan; docs/esp32/quickref.rst, "LAN") that the stub's generic LAN(id, *,
        # phy_type, phy_addr, ref_clk_mode) leaves out: given as ** so that mypy still
        # checks the rest of the call.
        pins = {k: Pin(b[k]) for k in ("mdc", "mdio", "power", "ref_clk")}
        # ref_clk_mode Pin.OUT: the ESP32 drives the PHY's 50 MHz RMII clock on ref_clk.
        lan = network.LAN(0, phy_type=phy, phy_addr=b["phy_addr"], ref_clk_mode=Pin.OUT, **pins)
        lan.active(True)
        self._lan = lan

    def net_connect(self, ssid, key):
        # One attempt. WLAN: whatever the driver was doing is stopped first (a connect()
        # while it connects raises "Wifi Internal Error"). LAN: the PHY and DHCP retry by
        # themselves; only a stopped interface is started again.
        w = self._wlan
        if w is not None:
            try:
                w.disconnect()
            except OSError:
                pass
            w.connect(ssid, key)
        elif self._lan is not None and not self._lan.active():
            self._lan.active(True)

    def net_status(self):
        # -> the port's status code: WLAN STAT_*, LAN ETH_* (lamp.net.netif names them)
        if self._wlan is not None:
            return self._wlan.status()
        return self._lan.status() if self._lan is not None else None

    def net_up(self):
        nic = self._wlan or self._lan
        return nic is not None and nic.isconnected()

    def net_ip(self):
        nic = self._wlan or self._lan
        return nic.ifconfig()[0] if nic is not None else None

    def net_rssi(self):
        # dBm of the AP, None when not associated (the port raises then) or on Ethernet.
        if self._wlan is None:
            return None
        try:
            return self._wlan.status("rssi")
        except OSError:
            return None
