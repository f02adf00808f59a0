# What both backends share: the board, and the arithmetic between pins and quantities,
# so the sim exercises exactly the conversions the pole does.

# MicroPython's PWM.duty_u16() takes 0..65535 whatever the hardware resolution.
DUTY_MAX = 65535
# Reset causes as reported in the boot event (names, not the port's integers).
RESET_CAUSES = ("power_on", "hard", "wdt", "deep_sleep", "soft", "brownout", "unknown")


class HalBase:
    def __init__(self, board):
        self.board = board
        self.duty = 0  # last PWM duty written, 0..DUTY_MAX
        self.relay_on = False

    def set_duty(self, duty):
        if not 0 <= duty <= DUTY_MAX:
            raise ValueError("duty %d outside 0..%d" % (duty, DUTY_MAX))
        self.duty = duty
        self._write_duty(duty)

    def set_relay(self, on):
        on = bool(on)
        self.relay_on = on
        self._write_relay(on)

    def cp_mv(self):
        # Control-pilot voltage (mV, -12000..+12000) from the ADC pin through the board's
        # divider: V_cp = (V_adc - offset) * scale. None when the board has no pilot input.
        cp = self.board["cp_adc"]
        if cp is None:
            return None
        return int((self.adc_mv() - cp["offset_mv"]) * cp["scale"])

    # Feedback for fault detection (docs/energy.md): None means "not fitted on this
    # board", and the faults that need the input are then not detected.
    def mains_ok(self):
        # Mains present on the supply side of the relay (opto-isolated line sense).
        return None

    def relay_sense(self):
        # The driver is energised: load-side voltage sense or the relay's auxiliary contact.
        return None

    def lamp_sense(self):
        # The lamp is lit: load-current comparator (CT) or photodiode in the luminaire.
        return None

    # Backends implement: _write_duty, _write_relay, motion, s0_count, adc_mv, i2c, uart,
    # set_status_led, wdt_start, wdt_feed, reset_cause, reset, rtc_memory; and for the
    # network link (lamp.net.netif): net_open, net_connect, net_status, net_up, net_ip,
    # net_rssi, the port's network calls on both (lamp.hal.simnet on the sim).
    def _write_duty(self, duty):
        raise NotImplementedError

    def _write_relay(self, on):
        raise NotImplementedError

    def adc_mv(self):
        raise NotImplementedError
