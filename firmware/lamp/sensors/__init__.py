# Environmental sensor drivers (one module per chip) and what they share. A driver talks
# to its chip only through the bus the HAL gives it (machine.I2C / machine.UART subset),
# so the same code runs on the pole and against the sim's byte-level device models.
#
# Driver contract (docs/sensors.md):
#   class Driver:
#       FIELDS = (("temp", "degC", -40, 85), ...)   # name, unit, plausible lo, hi
#       def __init__(self, bus, **opts)             # no bus traffic here
#       async def start(self)                       # probe and configure; raises OSError
#                                                   # (no answer) or SensorError (wrong
#                                                   # chip, bad checksum, ...)
#       async def read(self)                        # -> tuple of numbers, one per FIELD
#                                                   # (None for a field not measured this
#                                                   # time), or None: no new sample yet;
#                                                   # raises OSError / SensorError
# Values are ints in the field's unit, or in tenths where the name ends in "_x10"
# (temp_x10 = 231 is 23.1 degC): integers keep the node's heap free of float garbage.


class SensorError(ValueError):
    # The chip answered, but the answer is wrong: bad checksum or CRC, wrong chip id,
    # a frame that does not parse. Distinct from OSError (no answer at all).
    pass


def crc8(data, poly=0x31, init=0xFF):
    # CRC-8 as Sensirion uses it (SCD4x datasheet sec. 3.11: polynomial 0x31, init 0xFF,
    # no reflection, no final XOR); CRC-8(0xBEEF) = 0x92.
    crc = init
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = ((crc << 1) ^ poly) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc
