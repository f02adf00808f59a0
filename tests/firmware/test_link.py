# lamp.net.link: the node's one command path behind MQTT and CoAP, with no broker and no
# socket: what it answers, and that the command code it loads for a command leaves again.
import json
import sys
from binascii import hexlify

from fw import fresh, sim_hal
from lamp import app, clock, config
from lamp.cmd.canon import canonical, hmac_sha256
from lamp.net.link import Net

T0 = 1795624200  # 2026-11-25T16:30:00Z
KEY = bytes(range(32))
FAILED_ACK = {"v", "id", "node", "ok", "error", "detail"}


def _net(name):
    clock.setup(start=T0, manual=True)
    cfg = config.build({"log_level": "error", "node": "gw-7", "key": hexlify(KEY).decode()})
    node = app.Node(sim_hal(), cfg, root=fresh(name) + "-")
    node.setup_site()
    node.evaluate()
    return Net(node, cfg)


def _signed(ctr, cmd, args):
    env = {"v": 1, "id": "c-%d" % ctr, "node": "gw-7", "ctr": ctr, "cmd": cmd, "args": args}
    env["mac"] = hexlify(hmac_sha256(KEY, canonical(env))).decode()
    return json.dumps(env)


def test_a_command_s_code_leaves_the_heap_with_it():
    net = _net("link-unload")
    ack = net.handle(_signed(1, "dim", {"level": 40}))
    assert ack["ok"] is True, ack
    left = [k for k in sys.modules if k == "lamp.cmd" or k.startswith("lamp.cmd.")]
    assert left == [], left
    assert "lamp.check" not in sys.modules and "lamp.config" not in sys.modules


def test_a_coap_put_of_another_command_is_a_whole_failed_ack():
    # PUT /dim whose envelope says schedule: refused as malformed, with the node's id and
    # a detail like every failed ack (ack.json, lanterna.wire.protocol.parse_ack).
    net = _net("link-coap")
    code, body, ct = net._coap(3, "/dim", _signed(1, "schedule", {}), 50, None, None)
    ack = json.loads(body)
    assert code == 0x80 and ct == 50, code
    assert set(ack) == FAILED_ACK, ack
    assert ack["node"] == "gw-7" and ack["error"] == "malformed" and ack["detail"], ack


def test_a_replay_names_the_node_s_counter_as_a_field():
    net = _net("link-replay")
    assert net.handle(_signed(5, "identify", {"seconds": 1}))["ok"] is True
    ack = net.handle(_signed(3, "identify", {"seconds": 1}))
    assert (ack["error"], ack["ctr"]) == ("replay", 5), ack
    assert set(ack) == FAILED_ACK | {"ctr"}, ack
