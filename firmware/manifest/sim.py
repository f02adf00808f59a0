# ruff: noqa: F821 -- module() and package() are given by the reader
# The image of a virtual node (the sim board, the MicroPython unix port): every firmware
# module but the ESP32 backend, which imports machine, network and esp32 (not on the
# unix port). Read by lanterna.device.firmware (docs/firmware.md, "Manifests").
module("boot.py")
module("main.py")
module("loader.py")
package("lamp", exclude=("lamp/hal/esp32.py",))
