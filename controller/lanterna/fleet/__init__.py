"""The fleet: what a street-lighting team manages, over the store and the wire.

``registry`` holds the rules for sites, nodes and keys; ``commander`` signs commands to
many nodes and collects their acks with retries (MQTT or CoAP); ``ingest`` is
`lanterna serve`, the durable subscriber that writes what nodes publish into the store;
``schedules`` validates and previews schedules with the node's own code; ``energy``
reports kWh used against the full-power dusk-to-dawn baseline. Nothing here imports the
simulator or click.
"""
