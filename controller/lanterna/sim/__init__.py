"""The virtual district: the real firmware on simulated boards, for tests, benches and
`make demo`. The library never imports this package; only the CLI and the tests do.

``district`` runs N nodes (one MicroPython process each) against a real broker;
``node`` runs one (`lanterna node run`); ``simbus`` serves the sim board's chips (BME280,
PMS5003, ...) at byte level from this process; ``vboard`` and ``vboard_chip`` are a
raw-REPL board on a TCP port for real mpremote; ``demo`` is `make demo`. ``mp/`` holds
the scripts that run inside MicroPython (the ROMFS stand-in, the virtual board's chip):
files handed to the interpreter, never imported by CPython.
"""
