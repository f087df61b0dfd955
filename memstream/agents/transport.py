"""Faust's Kafka consumer with a short fetch long-poll.

Faust hard-codes ``fetch_max_wait_ms=1500`` for its worker consumer. The worker subscribes to
several topics, and when Faust pauses a busy partition under buffer pressure, the fetch in
flight for the others (a quiet jobs topic) long-polls for up to that long; the resumed
partition waits for it. Measured on tansu: a paused-and-resumed partition next to an empty
one waited 1.15 s per round on average (60 ms alone), and the ingest worker sat idle ~85 % of
a backlog replay. A short long-poll keeps the price of a pause small.
"""

from __future__ import annotations

from typing import Any

from faust.transport.drivers import aiokafka as driver

#: Set by :func:`use_fetch_max_wait` before the app starts (the worker's setting).
_fetch_max_wait_ms = 100


class _ConsumerThread(driver.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        # aiokafka hands this to its fetcher when the consumer starts (after creation).
        consumer._fetch_max_wait_ms = _fetch_max_wait_ms
        return consumer


class _Consumer(driver.Consumer):
    def _new_consumer_thread(self) -> Any:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)


def use_fetch_max_wait(ms: int) -> None:
    """Make Faust's Kafka transport build worker consumers with this fetch long-poll."""
    global _fetch_max_wait_ms
    _fetch_max_wait_ms = ms
    driver.Transport.Consumer = _Consumer
