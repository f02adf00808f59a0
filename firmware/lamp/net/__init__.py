# The network side (docs/protocol.md): the MQTT client and its packets, the CoAP server
# and its messages, sockets under asyncio (aio), NTP, and the glue that puts the node on
# them (link). Loaded only on a node whose config asks for a network; NTP is loaded for
# each sync and dropped after it.
