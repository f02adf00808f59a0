# ruff: noqa: F821 -- module() and package() are given by the reader
# The image of a pole (boards with chip esp32, esp32s3): every firmware module but the
# simulator's, whose HAL backend (lamp/hal/sim, simbus, simnet) and byte-level models
# (lamp/hal/simdev/) a pole never imports and would only carry on its flash.
# Read by lanterna.device.firmware (docs/firmware.md, "Manifests"): MicroPython's manifest
# style, paths relative to firmware/.
module("boot.py")
module("main.py")
module("loader.py")
package(
    "lamp",
    exclude=(
        "lamp/hal/sim.py",
        "lamp/hal/simbus.py",
        "lamp/hal/simnet.py",
        "lamp/hal/simstop.py",
        "lamp/hal/simdev",
    ),
)
