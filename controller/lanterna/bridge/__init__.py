"""The city platform: NGSI-LD entities in FIWARE Smart Data Models, their durable
outbox, and open-data exports (docs/platform.md)."""
