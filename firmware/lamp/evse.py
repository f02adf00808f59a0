# The EV charge point on the lamp post: its IEC 61851-1 control-pilot state, read from the
# pilot's high level through the ADC (hal.cp_mv()), debounced and mapped to OCPP 1.6
# ChargePointStatus (a StatusNotification payload on every change), and the charge energy
# from the charger's S0 meter, with sessions from plug-in to unplug. docs/protocol.md.
#
# During B/C/D the charger drives the pilot with 1 kHz PWM (the duty is the current
# offer, IEC 61851-1 Annex A): the state is the HIGH level; the low level is -12 V. The
# sim gives a DC level. On the pole hal.cp_mv() must return the high level: the esp32
# backend reads a burst of ADC samples spanning more than one PWM period (> 1 ms) and
# keeps the highest (or samples on the rising edge from a Pin IRQ for the 5 % duty of
# digital communication, whose high level lasts only 50 us).
from lamp import clock

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):  # type: ignore[misc]  # the stub's signature is generic
        return x


_INVALID = const(6)  # no band: a pilot level the standard does not define
_MWS_PER_MWH = const(3600000)  # mW * ms in one mWh
# IEC 61851-1 Annex A tolerance bands of the pilot's high level (mV), per state A..F:
# nominal 12/9/6/3/0/-12 V, each band meeting its neighbour half-way (F stands alone).
_LO = (10500, 7500, 4500, 1500, -1500, -20000)
_HI = (20000, 10500, 7500, 4500, 1500, -10500)
STATES = "ABCDEF?"
# OCPP 1.6 ChargePointStatus and ChargePointErrorCode per state (B is decided below).
_STATUS = ("Available", "Preparing", "Charging", "Charging", "Faulted", "Unavailable", "Faulted")
_ERROR = ("NoError",) * 4 + ("EVCommunicationError", "NoError", "OtherError")

SPEC = {
    "sample_ms": (100, 20, 1000),  # pilot sampling period
    "debounce": (3, 1, 50),  # consecutive samples a new state needs before it counts
    "hysteresis_mv": (300, 0, 1000),  # the state held widens its band by this much
    "s0_imp_kwh": (1000, 1, 100000),  # meter constant printed on the charger's S0 meter
    "power_window_s": (60, 5, 3600),  # S0 power is averaged over this window
    # A session that has charged ends after this long without charging (B: SuspendedEV,
    # E, F, invalid); 0: only unplugging (A) ends it.
    "idle_stop_s": (1800, 0, 86400),
    "connector_id": (1, 1, 9),
}


class Evse:
    def __init__(self, hal, on_event, cfg=None):
        # on_event(name, payload): "evse_status" (a StatusNotification), "ev_session_start",
        # "ev_session_stop".
        self.hal = hal
        self.on_event = on_event
        from lamp.check import checked  # at boot only: unloaded after

        self.cfg = checked("evse", SPEC, cfg)
        # A board without a pilot input has no charge point: the component is absent.
        self.present = hal.cp_mv() is not None
        self.state = None  # index into STATES once a state has been accepted
        self.mv = None  # last pilot sample
        self._cand = None
        self._n = 0
        self._sent = None  # (status, errorCode) last notified
        self.session = 0  # id of the last session started
        self.active = False
        self._ended = False  # a session ended while still plugged in: Finishing
        self._t0 = 0  # session start (mono ms)
        self._m0 = 0  # meter at session start (mWh)
        self._idle = 0  # when the session stopped charging (mono ms)
        self.mwh = 0
        self.power_w = 0
        self._rem = 0
        self._pw_t = clock.mono_ms()
        self._s0 = hal.board.get("s0") is not None
        self._last = self._pw_n = hal.s0_count() if self._s0 else 0

    def _band(self, mv):
        # The state held keeps its band widened by the hysteresis, so a level wandering
        # around an edge does not chatter; otherwise the plain bands decide.
        s = self.state
        h = self.cfg["hysteresis_mv"]
        if s is not None and s < _INVALID and _LO[s] - h <= mv <= _HI[s] + h:
            return s
        for i in range(6):
            if _LO[i] < mv <= _HI[i]:
                return i
        return _INVALID

    def sample(self):
        # One step: read the pilot, debounce, meter the energy, end an idle session.
        if not self.present:
            return
        self.mv = mv = self.hal.cp_mv()
        now = clock.mono_ms()
        self._meter(now)
        s = self._band(mv)
        if s == self.state:
            self._n = 0
        else:
            if s != self._cand:
                self._cand = s
                self._n = 0
            self._n += 1
            if self._n >= self.cfg["debounce"]:
                self._n = 0
                self._enter(s, now)
        lim = self.cfg["idle_stop_s"] * 1000
        if self.active and self.state not in (2, 3) and lim and now - self._idle >= lim:
            self._stop(now, "Other")
            self._notify()

    def _enter(self, s, now):
        was = self.state
        self.state = s
        if s in (2, 3):  # C, D: the vehicle draws energy
            if not self.active:
                self.active = True
                self._ended = False
                self.session += 1
                self._t0 = now
                self._m0 = self.mwh
                self.on_event(
                    "ev_session_start",
                    {
                        "session": self.session,
                        "meter_wh": self.mwh // 1000,
                        "timestamp": clock.iso(),
                    },
                )
        elif s == 0:
            if self.active:
                self._stop(now, "EVDisconnected")
            self._ended = False
        elif was in (2, 3):
            self._idle = now
        self._notify()

    def _stop(self, now, reason):
        self.active = False
        self._ended = True
        wh = (self.mwh - self._m0) // 1000
        self.on_event(
            "ev_session_stop",
            {
                "session": self.session,
                "kwh": wh / 1000,
                "wh": wh,
                "duration_s": (now - self._t0) // 1000,
                "meter_wh": self.mwh // 1000,
                "reason": reason,
                "timestamp": clock.iso(),
            },
        )

    def _meter(self, now):
        if not self._s0:
            return
        n = self.hal.s0_count()
        imp = self.cfg["s0_imp_kwh"]
        if n != self._last:
            # 1 impulse = 1e6 / imp mWh; the remainder carries to the next impulse. Only
            # on an impulse: past ~1 MWh the total is a long int on the ESP32 (31-bit
            # small ints), and every sum would allocate.
            self._rem += (n - self._last) * 1000000
            self._last = n
            self.mwh += self._rem // imp
            self._rem %= imp
        dt = now - self._pw_t
        if dt >= self.cfg["power_window_s"] * 1000:
            self.power_w = (n - self._pw_n) * _MWS_PER_MWH * 1000 // imp // dt
            self._pw_n = n
            self._pw_t = now

    def ocpp(self):
        # (ChargePointStatus, ChargePointErrorCode), or None before the first state.
        s = self.state
        if s is None:
            return None
        st = _STATUS[s]
        if s == 1 and (self.active or self._ended):
            # B after charging: the EV paused (SuspendedEV); after the session ended
            # with the cable still in: Finishing (OCPP 1.6 ChargePointStatus).
            st = "SuspendedEV" if self.active else "Finishing"
        return st, _ERROR[s]

    def _notify(self):
        cur = self.ocpp()
        if cur is None or cur == self._sent:
            return
        self._sent = cur
        self.on_event(
            "evse_status",
            {
                "connectorId": self.cfg["connector_id"],
                "errorCode": cur[1],
                "status": cur[0],
                "timestamp": clock.iso(),
            },
        )

    async def run(self):
        while self.present:
            await clock.sleep_ms(self.cfg["sample_ms"])
            self.sample()

    def status(self):
        cur = self.ocpp() or (None, None)
        s = self.state
        return {
            "present": self.present,
            "state": None if s is None else STATES[s],
            "status": cur[0],
            "error_code": cur[1],
            "session": self.session,
            "session_active": self.active,
            "session_kwh": (self.mwh - self._m0) // 1000 / 1000 if self.active else 0.0,
            "total_kwh": self.mwh // 1000 / 1000,
            "power_w": self.power_w,
        }
