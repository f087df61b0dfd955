"""Faust's Kafka consumer, tuned for the worker: a short fetch long-poll, batch delivery.

**Fetch long-poll.** Faust hard-codes ``fetch_max_wait_ms=1500`` for its worker consumer. The
worker subscribes to several topics, and when Faust pauses a busy partition under buffer
pressure, the fetch in flight for the others (a quiet jobs topic) long-polls for up to that
long; the resumed partition waits for it. Measured on tansu: a paused-and-resumed partition
next to an empty one waited 1.15 s per round on average (60 ms alone), and the ingest worker
sat idle ~85 % of a backlog replay. A short long-poll keeps the price of a pause small.

**Delivery per fetched batch.** Faust hands each fetched record to its conductor inside
``Service.wait_first(callback, suspend_flow.wait())``, so that a rebalance (``stop_flow``) can
abandon a callback blocked on a full stream buffer. That race costs four tasks and an
``asyncio.wait`` *per record*: more than half of what a bare agent on stock Faust spends per
record (67 µs; 30 µs without it, measured by ``memstream bench ingest``). Here the whole
fetched batch is delivered by one task, raced once against the same events: a rebalance still
cancels delivery where it blocks, the read offset stays at the last record handed on (Faust's
own loop marks the abandoned one read), and Faust's seek back to the committed offsets reads
the rest again.
"""

from __future__ import annotations

import asyncio
from typing import Any

from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.drivers import aiokafka as driver
from faust.types import TP, Message

#: Set by :func:`use_fetch_max_wait` before the app starts (the worker's setting).
_fetch_max_wait_ms = 100

#: Records delivered between two yields to the event loop (Faust's own figure).
_YIELD_EVERY = 100


class _ConsumerThread(driver.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        # aiokafka hands this to its fetcher when the consumer starts (after creation).
        consumer._fetch_max_wait_ms = _fetch_max_wait_ms
        return consumer


class _Consumer(driver.Consumer):
    #: Fetched batches whose delivery a rebalance (or shutdown) cut short.
    deliveries_interrupted = 0

    def _new_consumer_thread(self) -> Any:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def _drain_messages(self, fetcher: Any) -> None:
        """The fetcher's loop: fetch a batch (in this task, so Faust's flow checks and its
        seek-back after a rebalance run as they always do), then deliver it in one task."""
        consumer_stopped = self._stopped.is_set
        fetcher_stopped = fetcher._stopped.is_set
        try:
            while not (consumer_stopped() or fetcher_stopped()):
                self.diag.set_flag(CONSUMER_FETCHING)
                records = self.getmany(timeout=1.0)
                await self.sleep(0)  # getmany may return at once, again and again
                if not self.should_stop:
                    batch = [item async for item in records]
                    if batch and self.flow_active:
                        delivering = self._deliver(batch)
                        done = await self.wait_first(delivering, self.suspend_flow.wait())
                        if delivering not in done.done:
                            self.deliveries_interrupted += 1
                self.diag.unset_flag(CONSUMER_FETCHING)
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                self.log.info("Broker stopped consumer, shutting down...")
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                self.log.info("Consumer shutting down for user cancel.")
                return
            raise
        except Exception as exc:
            self.log.exception("Drain messages raised: %r", exc)
            raise
        finally:
            self.diag.unset_flag(CONSUMER_FETCHING)

    async def _deliver(self, batch: list[tuple[TP, Message]]) -> None:
        """Hand records to the conductor in order, skipping any already read, recording
        offset gaps for acking topics and committing every ``commit_every`` acks (Faust's
        per-record rules). Cancelled by a rebalance, it leaves the rest unread."""
        callback = self.callback
        read_offset = self._read_offset
        commit_every = self._commit_every
        acks_enabled_for = self.app.topics.acks_enabled_for
        for n, (tp, message) in enumerate(batch, 1):
            if n % _YIELD_EVERY == 0:
                await asyncio.sleep(0)
            offset = message.offset
            last = read_offset[tp]
            if last is not None and offset < last:
                self.log.dev("DROPPED MESSAGE ROFF %r", offset)
                continue
            if last and offset - last > 1 and acks_enabled_for(message.topic):
                await self._add_gap(tp, last + 1, offset)
            if commit_every is not None and self._n_acked >= commit_every:
                self._n_acked = 0
                await self.commit()
            await callback(message)
            read_offset[tp] = offset


def use_fetch_max_wait(ms: int) -> None:
    """Make Faust's Kafka transport build worker consumers with this fetch long-poll."""
    global _fetch_max_wait_ms
    _fetch_max_wait_ms = ms
    driver.Transport.Consumer = _Consumer
