# The only door to hardware. `open(board)` returns the backend for the board's chip:
# `esp32` on the pole (the only module importing machine/network/esp32), `sim` on the
# MicroPython unix port, where the same driver code talks to byte-level device models.
import sys


class HalError(ValueError):
    pass


def open(board, **opts):
    if board["chip"] == "sim":
        from lamp.hal.sim import SimHal

        return SimHal(board, **opts)
    if sys.platform != "esp32":
        raise HalError(
            "board %s: chip %s needs an ESP32, this is %s (use --board with the sim board)"
            % (board["name"], board["chip"], sys.platform)
        )
    from lamp.hal.esp32 import Esp32Hal

    return Esp32Hal(board)
