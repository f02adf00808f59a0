# The simulated board: runs on the MicroPython unix port. It keeps what a pole would
# show (PWM duty, relay, status LED) observable and lets tests inject what a pole would
# sense (motion, S0 pulses, control-pilot voltage, ambient light, bytes on I2C and UART).
# I2C and UART are modelled at byte level so sensor drivers run unchanged.
from lamp.hal.base import HalBase

_ENODEV = 19  # what machine.I2C raises when no device ACKs its address
_ETIMEDOUT = 110
# The ESP32 ADC reads 0..3.3 V in 12 bits with 11 dB attenuation.
_ADC_FULL_MV = 3300
_ADC_STEPS = 4095
_PIN_OUT = 3  # machine.Pin.OUT on the ESP32 port (GPIO_MODE_INPUT_OUTPUT)
# The sim board has no PHY of its own ("lan": null): a LAN8720 as olimex-esp32-poe wires it.
_SIM_LAN = {"phy": "LAN8720", "phy_addr": 0, "mdc": 23, "mdio": 18, "power": 12, "ref_clk": 17}


class SimI2C:
    # The subset of machine.I2C the drivers use. A device model implements
    # write(data) for a write transaction and read(n) -> bytes for a read transaction.
    def __init__(self):
        self.devices = {}
        self.nack = set()  # addresses forced to NACK (fault injection)

    def attach(self, addr, model):
        self.devices[addr] = model

    def _dev(self, addr):
        dev = self.devices.get(addr)
        if dev is None or addr in self.nack:
            raise OSError(_ENODEV)
        return dev

    def scan(self):
        return sorted(a for a in self.devices if a not in self.nack)

    def writeto(self, addr, buf, stop=True):
        self._dev(addr).write(bytes(buf))
        return len(buf)

    def readfrom(self, addr, nbytes, stop=True):
        data = self._dev(addr).read(nbytes)
        if len(data) != nbytes:
            raise OSError(_ETIMEDOUT)
        return data

    def readfrom_into(self, addr, buf, stop=True):
        buf[:] = self.readfrom(addr, len(buf))

    def _mem(self, memaddr, addrsize):
        return memaddr.to_bytes(addrsize // 8, "big")

    def writeto_mem(self, addr, memaddr, buf, addrsize=8):
        self._dev(addr).write(self._mem(memaddr, addrsize) + bytes(buf))

    def readfrom_mem(self, addr, memaddr, nbytes, addrsize=8):
        # A register read: write the pointer, repeated start, read.
        self._dev(addr).write(self._mem(memaddr, addrsize))
        return self.readfrom(addr, nbytes)

    def readfrom_mem_into(self, addr, memaddr, buf, addrsize=8):
        buf[:] = self.readfrom_mem(addr, memaddr, len(buf), addrsize)


class SimUART:
    # The subset of machine.UART the drivers use. Tests (or a device model) feed() bytes
    # the device sends; what the firmware writes is kept in `sent` and handed to the
    # model's on_write(data) if one is attached.
    def __init__(self, rxbuf=512):
        self.rx = bytearray()
        self.rxbuf = rxbuf
        self.sent = bytearray()
        self.model = None
        self.overflows = 0

    def feed(self, data):
        self.rx.extend(data)
        extra = len(self.rx) - self.rxbuf
        if extra > 0:  # a real UART FIFO/ring drops what does not fit
            self.rx = self.rx[extra:]
            self.overflows += extra

    def any(self):
        m = self.model
        if m is not None and m.live:  # a sensor running on its own clock (the sim node)
            m.step()
        return len(self.rx)

    def read(self, nbytes=-1):
        if not self.rx:
            return None
        if nbytes < 0 or nbytes > len(self.rx):
            nbytes = len(self.rx)
        out = bytes(self.rx[:nbytes])
        self.rx = self.rx[nbytes:]
        return out

    def readinto(self, buf):
        data = self.read(len(buf))
        if data is None:
            return None
        buf[: len(data)] = data
        return len(data)

    def write(self, data):
        self.sent.extend(data)
        if self.model is not None:
            self.model.on_write(bytes(data))
        return len(data)


def _env(name):
    import os

    return os.getenv(name)


def _bus_address():
    # "host:port" of the device bus process when the virtual node has one
    # (LANTERNA_SIMBUS, set by `lanterna node run` and `lanterna sim`), else None.
    return _env("LANTERNA_SIMBUS")


class SimHal(HalBase):
    def __init__(self, board, reset_cause="power_on", devices=False):
        # devices: attach models of the chips the board file names (the virtual node
        # does); unit tests attach only what they exercise, to spare their heap.
        super().__init__(board)
        self.motion_level = False
        self.pulses = 0
        self.cp_volts = 12.0  # state A: no vehicle
        self.lux = None  # ambient light (lux) for light-sensor models; None: a clear sky
        self.led_on = False
        self.wdt_timeout_ms = None
        self.wdt_feeds = 0
        self.resets = 0
        # A virtual node restarted after its soft reset is told so by its runner.
        self._cause = _env("LANTERNA_RESET_CAUSE") or reset_cause
        # The controller's stop request (lanterna.sim.stop): lamp.hal.simstop, loaded only
        # for a virtual node that was given one (unit tests spare its heap).
        self._stop = None
        if _env("LANTERNA_STOP"):
            from lamp.hal.simstop import asked

            self._stop = asked
        self._rtc_mem = b""
        self._i2c = SimI2C()
        self._uart = SimUART()
        self.duty_log = []  # (duty) writes, for tests of fade smoothness
        self.log_duty = False
        self.trace_pwm = _env("LANTERNA_PWM_TRACE") is not None
        # Lamp model (fault injection, docs/energy.md): what the pole's feedback inputs
        # would read. `dark_duty` is the duty at which the driver gives no light: 0 for
        # PWM, None for a 1-10 V driver (it only goes dark when the relay opens).
        self.mains = True
        self.relay_welded = None  # None: follows the coil; True/False: stuck closed/open
        self.lamp_failed = False
        self.day_burner = False  # lit whatever the node commands (bypassed control)
        self.dark_duty = 0
        # The board's external RTC chip, as a register model on the I2C bus. A new chip
        # reports its time invalid until the node sets it (as after a battery change).
        self.rtc_chip = None
        self.models = {}
        if devices and _bus_address():
            # The chips live in the bus process (lanterna.simbus): none of them in this heap.
            import json

            from lamp.hal.simbus import Link, RemoteI2C, RemoteUART

            rtc = board["rtc"]["chip"] if board["rtc"] is not None else None
            hello = json.dumps({"sensors": board["sensors"], "rtc": rtc})
            link = Link(_bus_address(), hello.encode())
            self._i2c = RemoteI2C(link)
            self._uart = RemoteUART(link)
            return
        if devices and board["rtc"] is not None:
            from lamp.hal.simdev import rtc_model

            addr, self.rtc_chip = rtc_model(board["rtc"]["chip"])
            self._i2c.attach(addr, self.rtc_chip)
        # The sensors the board names, as models on the buses (lamp.hal.simdev), keyed by
        # sensor name for fault injection: hal.models["bme280"].fault = "nack".
        if devices:
            from lamp.hal.simdev import sensor_model

            for name in board["sensors"]:
                addr, m = sensor_model(name, self)
                self.models[name] = m
                if addr is not None:
                    self._i2c.attach(addr, m)

    # outputs
    def _write_duty(self, duty):
        if self.log_duty:
            self.duty_log.append(duty)
        if self.trace_pwm:  # LANTERNA_PWM_TRACE: the PWM output, as a scope would show it
            print("pwm duty %d" % duty)

    def _write_relay(self, on):
        pass

    def set_status_led(self, on):
        self.led_on = bool(on)

    # Inputs: tests set the attributes directly (motion_level, pulses, cp_volts, lux,
    # mains, relay_welded, lamp_failed, day_burner): a setter per input costs RAM.
    def motion(self):
        return self.motion_level

    def mains_ok(self):
        # The fault monitor samples this every second: the place to take a stop request.
        if self._stop is not None:
            self._stop(self)
        return self.mains

    def relay_sense(self):
        contact = self.relay_on if self.relay_welded is None else self.relay_welded
        return self.mains and contact

    def lamp_sense(self):
        if not self.mains:
            return False
        if self.day_burner:
            return True
        return self.relay_sense() and not self.lamp_failed and self.duty != self.dark_duty

    def s0_count(self):
        return self.pulses

    def adc_mv(self):
        # What the ESP32 ADC would read on the pilot pin: the pilot voltage through the
        # board's divider, clamped to the ADC range and quantised to 12 bits.
        cp = self.board["cp_adc"]
        mv = self.cp_volts * 1000 / cp["scale"] + cp["offset_mv"]
        mv = min(max(mv, 0), _ADC_FULL_MV)
        raw = int(mv * _ADC_STEPS / _ADC_FULL_MV + 0.5)
        return raw * _ADC_FULL_MV // _ADC_STEPS

    def i2c(self):
        return self._i2c

    def uart(self, baudrate=9600):
        return self._uart

    # system
    def wdt_start(self, timeout_ms):
        self.wdt_timeout_ms = timeout_ms

    def wdt_feed(self):
        self.wdt_feeds += 1

    def reset_cause(self):
        return self._cause

    def reset(self):
        # A soft reset on the sim ends the process; the runner restarts it.
        self.resets += 1
        raise SystemExit(3)

    def rtc_memory(self, data=None):
        # RTC slow memory survives a soft reset on the ESP32 (not a power cut).
        if data is not None:
            self._rtc_mem = bytes(data)
        return self._rtc_mem

    # The network interface, as Esp32Hal brings it up, against lamp.hal.simnet (the
    # port's network module as a model; its scenario from LANTERNA_SIM_NET). The same
    # calls in the same order as on the pole: a change there is made here too.
    def net_open(self, kind, name):
        from lamp.hal import simnet as network

        s = _env("LANTERNA_SIM_NET")
        if s:
            network.load(s)
        self.network = network  # tests drive network.air
        network.hostname(name)
        self._wlan = self._lan = None
        if kind == "wlan":
            w = network.WLAN(network.STA_IF)
            w.active(True)
            w.config(reconnects=0)
            self._wlan = w
            return
        b = self.board["lan"] or _SIM_LAN  # type: dict
        phy = getattr(network, "PHY_" + b["phy"], None)
        if phy is None:
            raise OSError("lan.phy: this firmware has no network.PHY_%s" % b["phy"])
        pins = {k: b[k] for k in ("mdc", "mdio", "power", "ref_clk")}  # machine.Pin ids
        lan = network.LAN(0, phy_type=phy, phy_addr=b["phy_addr"], ref_clk_mode=_PIN_OUT, **pins)
        lan.active(True)
        self._lan = lan

    def net_connect(self, ssid, key):
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
        if self._wlan is None:
            return None
        try:
            return self._wlan.status("rssi")
        except OSError:
            return None
