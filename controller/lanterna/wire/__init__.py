"""The wire contract, the controller's side (docs/protocol.md): what goes on the topics
and in the CoAP resources between the controller and a node.

``protocol`` signs commands (canonical form, HMAC-SHA256, counter) and reads acks;
``topics`` builds the topic tree from its one prefix; ``numbers`` holds the protocol's
registries (command names, error codes, LwM2M update states and results, event names),
checked against the node's lamp.numbers by a test; ``schemas/`` holds the JSON Schemas of
every payload, checked on both sides by the tests.
"""
