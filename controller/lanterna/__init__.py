"""Lanterna fleet controller: drives ESP32 lamp-post nodes over MQTT and CoAP."""

__version__ = "0.1.0"
