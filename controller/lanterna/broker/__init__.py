"""The MQTT broker, mosquitto 2.0 (docs/security.md): started for tests and the demo,
configured for the field.

``mosquitto`` runs a real broker on loopback; ``config`` generates the production
configuration (an account per node, an ACL per node, no anonymous access); ``tls`` makes
its CA and server certificate; ``credentials`` keeps the generated passwords (0600, never
printed); ``url`` is the one parser of ``mqtt://`` and ``mqtts://`` URLs.
"""
