"""`lanterna bridge ngsi-ld`: the store, kept in step with a city's NGSI-LD platform.

One sync is two steps. **Queue**: the nodes the store heard from since the last sync
(node_status.last_seen; every node on the first sync and every `full_every` seconds,
which also catches registry changes) and their groups become entities
(lanterna.bridge.ngsi), and what changed goes to the outbox (lanterna.bridge.outbox).
**Deliver**: the outbox is sent by batch upsert, at most `batch` entities a request,
until it is empty or the platform stops answering.

What an answer does (ETSI GS CIM 009, 6.31.3.1 for upsert's answers):
- 201, 204: every entity of the batch was taken.
- 207: those in ``success`` were taken; each of ``errors`` is refused if its problem is
  a 4xx (logged with the problem details, not retried until its value changes again) and
  retried later otherwise.
- 400, 413, 422 for the whole request (a payload the platform will not parse): a batch
  of several is sent again one entity at a time, so one bad entity cannot hold back the
  others; a single entity so refused is refused.
- 401, 403, 404, 408, 429, 5xx, no answer: nothing is settled; delivery stops and
  resumes after a backoff (1 s doubling to `max_backoff_s`, with full jitter, or the
  platform's Retry-After); the outbox keeps everything meanwhile, across restarts.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from lanterna.bridge import ngsi, source
from lanterna.bridge.client import Answer, Client, Unreachable, problem_text
from lanterna.bridge.outbox import Outbox, Pending
from lanterna.store import Store

log = logging.getLogger("lanterna.bridge")

SEEN_OVERLAP_S = 30.0
RETRY_LATER = {401, 403, 404, 405, 408, 409, 425, 429}


@dataclass
class Report:
    """One sync: what was queued and what became of it."""

    queued_entities: int = 0
    queued_attributes: int = 0
    sent: int = 0
    refused: int = 0
    retried: int = 0
    requests: int = 0
    pending: int = 0
    full: bool = False
    error: str | None = None
    refusals: list[dict[str, str]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


class Bridge:
    def __init__(
        self,
        store: Store,
        client: Client,
        *,
        batch: int = 100,
        full_every_s: float = 3600.0,
        max_backoff_s: float = 60.0,
        options: ngsi.Options | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not 1 <= batch <= 10000:
            raise ValueError(f"--batch {batch}: between 1 and 10000 entities a request")
        self.store = store
        self.client = client
        self.batch = batch
        self.full_every_s = full_every_s
        self.max_backoff_s = max_backoff_s
        self.options = options or ngsi.Options()
        self.clock = clock
        target = client.url + ("#" + client.tenant if client.tenant else "")
        self.outbox = Outbox(store, target)
        self.failures = 0  # consecutive failed deliveries
        self.wait_until = 0.0  # monotonic: no delivery before this

    # -- queue -----------------------------------------------------------------------

    def queue(self, full: bool = False) -> Report:
        r = Report()
        seen, full_at = self.outbox.mark()
        now = self.clock()
        r.full = full or seen is None or full_at is None or now - full_at >= self.full_every_s
        # The mark is read before the nodes, and the next sync reads from a little before
        # it: last_seen is the time serve received a message, and serve commits a batch
        # up to a second or so later, so a row may appear below a mark already taken.
        # What is read twice and did not change is not queued again.
        top = source.last_seen(self.store)
        groups: set[str] = set()
        since = None if r.full or seen is None else seen - SEEN_OVERLAP_S
        for page in source.nodes(self.store, seen_after=since):
            entities = []
            for n in page:
                entities.extend(ngsi.node_entities(n, self.options))
                groups.update(n.groups)
            a, b = self.outbox.queue(entities)
            r.queued_entities += a
            r.queued_attributes += b
        gs = source.groups(self.store, None if r.full else sorted(groups))
        a, b = self.outbox.queue(e for g in gs if (e := ngsi.streetlight_group(g)) is not None)
        r.queued_entities += a
        r.queued_attributes += b
        self.outbox.set_mark(
            top if top is not None else (seen or 0.0), now if r.full else (full_at or now)
        )
        return r

    # -- deliver ---------------------------------------------------------------------

    def deliver(self, r: Report, stop: threading.Event | None = None) -> Report:
        """Send what waits until the outbox is empty, the platform fails, or `stop`."""
        if time.monotonic() < self.wait_until:
            r.pending = self.outbox.count()
            return r
        while stop is None or not stop.is_set():
            items = self.outbox.pending(self.batch)
            if not items:
                break
            if not self._send(items, r):
                break
        r.pending = self.outbox.count()
        return r

    def _send(self, items: list[Pending], r: Report) -> bool:
        """One request; False when delivery must pause (nothing or part settled)."""
        r.requests += 1
        try:
            a = self.client.upsert([p.body() for p in items])
        except Unreachable as e:
            return self._fail(items, r, f"{self.client.url}: {e}")
        if a.status in (200, 201, 204):
            self.outbox.sent(items)
            r.sent += len(items)
            self._ok()
            return True
        if a.status == 207:
            by_id = {p.entity: p for p in items}
            later, refused = [], []
            for eid, prob in a.failed.items():
                p = by_id.get(eid)
                if p is None:
                    continue
                status = prob.get("status") if isinstance(prob, dict) else None
                if isinstance(status, int) and 400 <= status < 500 and status not in RETRY_LATER:
                    refused.append((p, prob))
                else:
                    later.append(p)
            failed = {p.entity for p in later} | {p.entity for p, _ in refused}
            taken = [p for p in items if p.entity not in failed]
            self.outbox.sent(taken)
            r.sent += len(taken)
            self._refuse(refused, r)
            if later:
                self.outbox.retry(later)
                r.retried += len(later)
                return self._fail([], r, f"{len(later)} entities failed: retried later")
            self._ok()
            return True
        if a.status in (400, 413, 422) and len(items) > 1:
            for p in items:  # find the one the platform will not take
                if not self._send([p], r):
                    return False
            return True
        if 400 <= a.status < 500 and a.status not in RETRY_LATER:
            self._refuse([(items[0], a.body)], r)
            self._ok()
            return True
        what = problem_text(a.body) if a.body is not None else a.text[:200]
        return self._fail(items, r, f"{self.client.url}: HTTP {a.status} {what}".rstrip(), a)

    def _refuse(self, refused: list[tuple[Pending, Any]], r: Report) -> None:
        if not refused:
            return
        self.outbox.refused([p for p, _ in refused])
        r.refused += len(refused)
        for p, prob in refused:
            text = problem_text(prob)
            log.warning("platform refused %s: %s (not retried until it changes)", p.entity, text)
            r.refusals.append({"entity": p.entity, "problem": text})

    def _fail(self, items: list[Pending], r: Report, why: str, a: Answer | None = None) -> bool:
        self.outbox.retry(items)
        r.retried += len(items)
        r.error = why
        self.failures += 1
        wait = random.uniform(0, min(self.max_backoff_s, 2.0 ** (self.failures - 1)))
        if a is not None and a.retry_after is not None:
            wait = min(max(wait, a.retry_after), self.max_backoff_s)
        self.wait_until = time.monotonic() + wait
        log.warning("%s; next try in %.1f s (%d waiting)", why, wait, self.outbox.count())
        return False

    def _ok(self) -> None:
        self.failures = 0
        self.wait_until = 0.0

    # -- the loop --------------------------------------------------------------------

    def once(self, full: bool = False, stop: threading.Event | None = None) -> Report:
        return self.deliver(self.queue(full), stop)

    def run(
        self,
        interval_s: float,
        stop: threading.Event,
        report: Callable[[Report], None] | None = None,
    ) -> None:
        """Sync every `interval_s` until `stop`; a failed delivery is tried again as soon
        as its backoff ends, without waiting for the next interval."""
        next_sync = 0.0
        while not stop.is_set():
            now = time.monotonic()
            if now >= next_sync:
                r = self.once(stop=stop)
                next_sync = now + interval_s
                if report is not None:
                    report(r)
            elif self.wait_until and now >= self.wait_until and self.outbox.count():
                r = self.deliver(Report(), stop)
                if report is not None and (r.sent or r.refused or r.error):
                    report(r)
            wake = next_sync
            if self.wait_until and self.wait_until > now:
                wake = min(wake, self.wait_until)
            stop.wait(max(0.01, wake - time.monotonic()))
