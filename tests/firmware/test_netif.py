# The pole's network link (lamp.net.netif) against the sim's model of the port's network
# module (lamp.hal.simnet): wrong key, no AP, slow DHCP, a link lost for 30 minutes with
# the lamp on its schedule throughout, backoff with full jitter, the spread of the first
# retry over 50 nodes, Ethernet with the board's PHY. Node time at warp (lamp.clock); no
# test reads the host's clock.
import asyncio

from fw import RUN, load_board, raises, sim_hal
from lamp import app, clock, unload
from lamp.hal import simnet
from lamp.net import netif

_WARP = 1000  # a node second per host millisecond
_DAY = 86400
# lamp.net.netif's timings (const(): not visible from outside the module)
_JOIN_MS = 45000
_BASE_MS = 30000
_CAP_MS = 300000
_NET = {"wlan": {"ssid": "pole-net", "password": "right-key-1"}}


def _at(hh, mm, day=20782):  # 2026-11-25 (UTC = Greenwich local time in November)
    return day * _DAY + hh * 3600 + mm * 60


def _air(**kw):
    s = {"ssid": "pole-net", "password": "right-key-1"}
    s.update(kw)
    simnet.air = simnet.Air(s)
    return simnet.air


def _link(net=None, hal=None, node="lamp-017"):
    hal = hal or sim_hal()
    events = []
    return netif.Netif(hal, net or _NET, node, events.append), hal, events


def _gaps(log):
    # The waits between tries: from one connect() to the next, less the try itself.
    return [log[i + 1] - log[i] - _JOIN_MS for i in range(len(log) - 1)]


async def _until(pred, node_s, step_ms=1000):
    # Node time passes until pred() holds (-> True) or node_s are gone (-> False).
    end = clock.mono_ms() + node_s * 1000
    while clock.mono_ms() < end:
        if pred():
            return True
        await clock.sleep_ms(step_ms)
    return pred()


async def test_right_key_comes_up_with_the_node_id_as_host_name():
    clock.setup(warp=_WARP, start=_at(12, 0))
    air = _air()
    link, hal, events = _link()
    t = asyncio.create_task(link.run())
    assert await _until(link.up.is_set, 60)
    # The first try after a random delay under 10 s; association and DHCP 1 s each.
    assert len(air.log) == 1 and air.log[0] < 10000
    assert hal._wlan.hostname_at_connect == "lamp-017"
    assert hal._wlan.config("reconnects") == 0  # every retry is the link's own
    assert link.status == "got_ip" and link.rssi() == -61
    assert events == [
        {
            "if": "wlan",
            "up": True,
            "status": "got_ip",
            "tries": 1,
            "ip": hal.net_ip(),
            "rssi": -61,
            "down_s": events[0]["down_s"],
            "lost": None,
        }
    ]
    assert hal.net_ip().startswith("10.0.")
    r = link.report()
    assert r == {"if": "wlan", "status": "got_ip", "up": True, "tries": 0}
    t.cancel()


async def test_wrong_key_is_reported_once_and_retried_with_growing_waits():
    clock.setup(warp=_WARP, start=_at(12, 0))
    air = _air(password="another-key")
    link, hal, events = _link()
    t = asyncio.create_task(link.run())
    assert not await _until(link.up.is_set, 1800)
    assert link.status == "wrong_password" and link.rssi() is None
    # One event for the reason, not one per try; the key itself never in it.
    assert events == [{"if": "wlan", "up": False, "status": "wrong_password", "tries": 1}]
    assert len(air.log) >= 5 and link.tries == len(air.log)
    gaps = _gaps(air.log)
    for n, g in enumerate(gaps, 1):
        # Full jitter: in [0, min(cap, base * 2^(n-1))) after a whole try (+ one poll).
        assert -1 <= g < min(_CAP_MS, _BASE_MS << (n - 1)) + 2000, (n, g)
    assert hal.resets == 0
    # The key is put right (the AP's changed to the node's): the link comes up.
    air.password = "right-key-1"
    assert await _until(link.up.is_set, 400)
    assert events[-1]["up"] and events[-1]["tries"] == len(air.log)
    t.cancel()


async def test_no_ap_then_the_ap_comes():
    clock.setup(warp=_WARP, start=_at(12, 0))
    air = _air(ap=False)
    link, hal, events = _link()
    t = asyncio.create_task(link.run())
    assert not await _until(link.up.is_set, 300)
    assert link.status == "no_ap_found"
    assert events == [{"if": "wlan", "up": False, "status": "no_ap_found", "tries": 1}]
    air.ap = True
    assert await _until(link.up.is_set, 400)
    assert hal.resets == 0
    t.cancel()


async def test_slow_dhcp_is_waited_for_not_retried():
    clock.setup(warp=_WARP, start=_at(12, 0))
    air = _air(dhcp_s=30)
    link, hal, events = _link()
    t = asyncio.create_task(link.run())
    assert await _until(lambda: link.status == "connecting", 30)
    assert not link.up.is_set()
    assert await _until(link.up.is_set, 60)
    # One try: associated at +1 s, the address at +31 s (to the poll's second).
    up = clock.mono_ms()
    assert len(air.log) == 1 and 31000 <= up - air.log[0] <= 32000
    assert [e["up"] for e in events] == [True]
    t.cancel()


def _node(root):
    from lamp import config

    cfg = config.build({"log_level": "warn", "tele_s": 3600, "node": "lamp-017", "network": _NET})
    del config
    unload("config")
    node = app.Node(sim_hal(), cfg, root=root)
    node.setup_site()
    node.replace_schedule(
        {
            "version": 1,
            "id": "outage",
            "profiles": {
                "p": [
                    {"at": "sunset", "level": 100},
                    {"at": "22:30", "level": 70},
                    {"at": "sunrise", "level": 0},
                ]
            },
            "calendar": [{"profile": "p"}],
        }
    )
    node.connect(None)
    return node


async def test_link_lost_for_30_minutes_the_lamp_follows_its_schedule_and_no_reboot():
    clock.setup(warp=_WARP, start=_at(22, 15))
    air = _air(down=[[120, 1800]])  # node seconds 120..1920: the AP is gone
    node = _node("/tmp/lanterna-test-%d-netif-" % RUN)
    told = []
    node._told = lambda name, p: told.append((name, p))
    run = asyncio.create_task(node.run())
    link = node.link
    step = _at(22, 30)
    up_before = down_during = True
    while clock.mono_ms() < 2400 * 1000:
        await clock.sleep_ms(5000)
        now = clock.now()
        s = clock.mono_ms() // 1000
        if s < 120:
            up_before = up_before and (s < 15 or link.up.is_set())
        elif 125 <= s < 1920:
            down_during = down_during and not link.up.is_set()
        # The schedule in node time, whatever the link does: 100 % to 22:30, then 70 %.
        if now != step:  # at the step's second the sampler may run before the loop
            want = 100 if now < step else 70
            assert node.dimmer.level == want, (now - step, node.dimmer.level)
    assert up_before and down_during
    assert link.up.is_set() and link.ups == 2
    ups = [p for n, p in told if n == "link" and p["up"]]
    downs = [p for n, p in told if n == "link" and not p["up"]]
    assert downs[0]["status"] == "beacon_timeout"
    assert ups[-1]["down_s"] >= 1800 - 5
    assert ups[-1]["lost"] == "beacon_timeout"
    # Retried through the outage, not at every poll: the backoff's windows.
    assert 4 <= len(air.log) <= 20
    assert node.hal.resets == 0 and node.failures == 0
    run.cancel()


async def test_backoff_cap_holds_over_a_long_outage():
    clock.setup(warp=_WARP, start=_at(12, 0))
    air = _air(ap=False)
    link, hal, events = _link()
    t = asyncio.create_task(link.run())
    await _until(lambda: False, 2 * 3600, 10000)
    print("waits", _gaps(air.log))
    gaps = _gaps(air.log)
    assert max(gaps) < _CAP_MS + 10000
    # Full jitter: the waits differ, some short, not one fixed interval.
    assert len(set(g // 1000 for g in gaps)) > len(gaps) // 2
    t.cancel()


async def test_first_retry_is_spread_over_a_feeder_of_50_nodes():
    # A feeder powers up at once with its AP down: 50 links, each its own interface and
    # its own draws from os.urandom. Run ten at a time from the same boot instant (50 at
    # once do not fit the pole's heap beside the test): a node's retry times depend on
    # its own draws only.
    import gc

    from lamp.hal.sim import SimHal

    class Nic:
        # The sim HAL's network part alone: 50 whole HALs would not fit either.
        board = load_board("sim")
        net_open = SimHal.net_open
        net_connect = SimHal.net_connect
        net_status = SimHal.net_status
        net_up = SimHal.net_up
        net_ip = SimHal.net_ip
        net_rssi = SimHal.net_rssi

    tries, retries = [], []
    for batch in range(5):
        clock.setup(warp=_WARP, start=_at(12, 0))
        air = _air(ap=False)
        links = [
            netif.Netif(Nic(), _NET, "lamp-%03d" % (batch * 10 + i), lambda p: None)
            for i in range(10)
        ]
        tasks = [asyncio.create_task(n.run()) for n in links]
        assert await _until(lambda ls=links: all(n.tries >= 2 for n in ls), 300)
        for t in tasks:
            t.cancel()
        # Every first try (under 10 s) comes before every first retry (a 45 s try and a
        # jittered wait later), and every first retry before any second one (45 s on).
        log = sorted(air.log)
        tries += log[:10]
        retries += log[10:20]
        del links, tasks, air, log
        gc.collect()
    tries.sort()
    retries.sort()
    assert tries[-1] < retries[0]
    spread_first = tries[-1] - tries[0]
    spread_retry = retries[-1] - retries[0]
    print("first try spread %d ms, first retry spread %d ms" % (spread_first, spread_retry))
    assert spread_retry >= 10000
    assert spread_first >= 3000


def test_ethernet_comes_up_with_the_board_s_phy():
    clock.setup(warp=_WARP, start=_at(12, 0))
    board = load_board("olimex-esp32-poe")
    from lamp.hal.sim import SimHal

    hal = SimHal(board)  # the sim's network model on the pole's board file
    air = _air(dhcp_s=4, down=[[100, 60]])
    link = netif.Netif(hal, {"lan": True}, "poe-01", lambda p: None)

    async def go():
        t = asyncio.create_task(link.run())
        assert await _until(link.up.is_set, 30)
        lan = hal._lan
        assert lan.args == {
            "mdc": 23,
            "mdio": 18,
            "power": 12,
            "ref_clk": 17,
            "phy_type": simnet.PHY_LAN8720,
            "phy_addr": 0,
            "ref_clk_mode": 3,  # Pin.OUT: the ESP32 drives the 50 MHz clock on GPIO17
        }
        assert lan.hostname_at_start == "poe-01" and link.rssi() is None
        assert await _until(lambda: not link.up.is_set(), 120)
        assert link.status == "eth_disconnected"
        # The cable back: DHCP by itself, found by the link's polling.
        assert await _until(link.up.is_set, 120)
        assert air.connects == 0  # Ethernet has no connect()
        t.cancel()

    asyncio.run(go())


def test_the_config_must_match_the_board():
    board = load_board("olimex-esp32-poe")
    from lamp.hal.sim import SimHal

    e = raises(ValueError, netif.Netif, SimHal(board), _NET, "x", None)
    assert "wlan, but board olimex-esp32-poe has lan" in str(e)


def test_network_section_is_checked_with_clear_errors():
    from lamp import config

    def err(net, node="lamp-1"):
        return str(raises(config.ConfigError, config.build, {"network": net, "node": node}))

    assert "expected" in err({"wifi": {}})
    assert "expected" in err({"lan": False})
    assert "wlan: ssid" in err({"wlan": {"password": "12345678"}})
    assert "wlan: ssid" in err({"wlan": {"ssid": "x" * 33}})
    msg = err({"wlan": {"ssid": "n", "password": "short"}})
    assert "wlan: password" in msg and "short" not in msg  # a secret is never echoed
    assert "wlan: channel: unknown key" in err({"wlan": {"ssid": "n", "channel": 6}})
    assert "DHCP host name" in err({"lan": True}, "lamp_017")
    assert "DHCP host name" in err({"lan": True}, "x" * 33)
    assert config.build({"network": {"lan": True}})["network"] == {"lan": True}
    open_net = config.build({"network": {"wlan": {"ssid": "town"}}, "node": "a-1"})
    assert open_net["network"]["wlan"] == {"ssid": "town"}


def test_status_names():
    assert netif.status_name(simnet.STAT_WRONG_PASSWORD) == "wrong_password"
    assert netif.status_name(simnet.STAT_NO_AP_FOUND) == "no_ap_found"
    assert netif.status_name(simnet.STAT_CONNECT_FAIL) == "connect_fail"
    assert netif.status_name(simnet.STAT_GOT_IP) == "got_ip"
    assert netif.status_name(simnet.ETH_GOT_IP) == "got_ip"
    assert netif.status_name(15) == "reason_15"  # a WIFI_REASON passed through
    assert netif.status_name(None) == "down"
