# Lamp level (integer percent) to LED-driver PWM duty through a perceptual curve, and the
# relay that cuts the driver's standby power at 0 %.
from lamp.hal.base import DUTY_MAX


def cie_duty(level, bits):
    # CIE 1931 lightness: a level is perceived lightness L* (0..100); the light output
    # needed is Y = ((L* + 16) / 116) ** 3 above L* = 8, else L* / 903.3.
    if level <= 0:
        return 0
    if level >= 100:
        return DUTY_MAX
    y = ((level + 16) / 116) ** 3 if level > 8 else level / 903.3
    top = (1 << bits) - 1
    steps = int(y * top + 0.5)  # quantised at the board's PWM resolution
    return steps * DUTY_MAX // top


class Dimmer:
    def __init__(self, hal, on_change=None):
        self.hal = hal
        self.bits = hal.board["pwm"]["bits"]
        self.level = None
        self.reason = None
        self.on_change = on_change

    def set(self, level, reason):
        level = int(level)
        if not 0 <= level <= 100:
            raise ValueError("level %d outside 0..100" % level)
        if level == self.level:
            return
        # Relay closes before light is asked for and opens only after the driver is dark.
        if level > 0:
            self.hal.set_relay(True)
        self.hal.set_duty(cie_duty(level, self.bits))
        if level == 0:
            self.hal.set_relay(False)
        self.level = level
        self.reason = reason
        if self.on_change is not None:
            self.on_change(level, reason)
