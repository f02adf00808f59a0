# What an authenticated command does to the node (lamp.cmd.handler checked who sent it
# and its arguments). Loaded with the handler for one command and dropped again
# (lamp.net.link): code a node runs a few times a day need not sit in its heap.
import json

from lamp import clock, log, write_json_atomic
from lamp import numbers as N
from lamp.numbers import FOREVER as _FOREVER

# config_set may change these, and nothing else (docs/commands.md).
CONFIG_KEYS = ("failsafe_level", "tele_s", "log_level")


class Control:
    def __init__(self, node, config_path=None):
        self.node = node
        self.config_path = config_path

    # Commands (lamp.cmd.handler calls apply with checked arguments)
    def apply(self, cmd, args):
        node = self.node
        if cmd == N.DIM:
            return self._dim(args)
        if cmd == N.SCHEDULE:
            from lamp.cmd.handler import CommandError

            try:
                sched = node.replace_schedule(args["schedule"])
            except ValueError as e:
                raise CommandError(N.E_BAD_ARGS, str(e))
            except OSError as e:
                raise CommandError(N.E_FAILED, "cannot store the schedule: %s" % e)
            node.wake.set()
            return {"schedule": sched.id}
        if cmd == N.CONFIG_SET:
            return self._config_set(args["key"], args["value"])
        if cmd == N.REBOOT:
            import asyncio

            # 0 is accepted and means at once, once the ack has left (_reboot).
            delay = args["delay_s"]
            asyncio.create_task(self._reboot(delay))
            return {"reboot_in_s": delay}
        if cmd == N.IDENTIFY:
            import asyncio

            asyncio.create_task(self._identify(args["seconds"]))
            return {"seconds": args["seconds"]}
        if cmd == N.OTA:
            # The download runs on in lamp.ota.fetch, not in this module (dropped after
            # this command); a refusal known now is the ack's "failed" with its LwM2M
            # Update Result as a field, and first in the detail for people ("11: slot b
            # is on trial: ...").
            from lamp.ota.fetch import offer

            got = offer(node, args)
            if isinstance(got, tuple):
                from lamp.cmd.handler import CommandError

                raise CommandError(N.E_FAILED, "%d: %s" % got, {"update_result": got[0]})
            return got
        raise ValueError(cmd)  # the handler only passes known commands

    def _dim(self, args):
        node = self.node
        level = args["level"]
        if level is None:
            node.arbiter.clear_override()
            until = None
        else:
            until = clock.now() + args["until_s"] if args.get("until_s") else _FOREVER
            node.arbiter.set_override(level, until, args.get("fade_s"))
        node.wake.set()
        node.save_lamp()
        return {
            "level": level,
            "until": None if until is None or until == _FOREVER else clock.iso(until),
        }

    def _config_set(self, key, value):
        # Checked as at boot (the whole config), written atomically, then put in force.
        from lamp import config
        from lamp.cmd.handler import CommandError

        node = self.node
        values = {}
        if self.config_path:
            try:
                with open(self.config_path) as f:
                    values = json.load(f)
            except (OSError, ValueError):
                values = {}
        values[key] = value
        try:
            cfg = config.build(values)
        except ValueError as e:
            raise CommandError(N.E_BAD_ARGS, str(e))
        if self.config_path:
            write_json_atomic(self.config_path, values)
        node.cfg[key] = cfg[key]
        if key == "failsafe_level":
            node.arbiter.failsafe_level = cfg[key]
            node.wake.set()
        elif key == "log_level":
            log.level = ("debug", "info", "warn", "error").index(cfg[key])
        return {"key": key, "value": cfg[key]}

    async def _reboot(self, delay_s):
        # After the ack has left: the delay, then up to 2 s (real time, as the ack's trip
        # is) while the outbox still holds it, since the ack is queued only once apply()
        # returned (a delay of 0 would otherwise cut it off). The lamp state is on flash.
        import asyncio

        await clock.sleep_ms(delay_s * 1000)
        net = self.node.net
        mq = net.mq if net is not None else None
        for _ in range(20):
            await asyncio.sleep_ms(100)
            if mq is None or not mq.pending:
                break
        self.node.save_lamp()
        self.node.energy.save()
        log.warn("control", "reboot by command")
        self.node.hal.reset()

    async def _identify(self, seconds):
        # The status LED blinks and the lamp dips to half its level once a second, so a
        # field engineer finds the pole in the street; then back to what it was.
        node = self.node
        hal = node.hal
        lvl = node.dimmer.level or 0
        reason = node.dimmer.reason
        for i in range(seconds * 2):
            hal.set_status_led(i % 2 == 0)
            node.dimmer.set(lvl // 2 if i % 2 == 0 else lvl, "identify", 0)
            await clock.sleep_ms(500)
        hal.set_status_led(False)
        node.dimmer.reason = reason  # the last blink left the level where it was
        node.wake.set()
