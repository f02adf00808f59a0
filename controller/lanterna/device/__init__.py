"""A real device, from source to pole (docs/provisioning.md).

``firmware`` compiles the node firmware with mpy-cross (per-board manifests) and builds
ROMFS images and slots; ``flash`` writes MicroPython to a board with esptool after
checking the image is for its chip; ``provision`` writes the firmware, board file and the
node's own config through mpremote, reads it back, and registers the node.
"""
