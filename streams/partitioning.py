"""Kafka's default key partitioning (murmur2, as Java clients and aiokafka do it).

librdkafka defaults to CRC32 (`consistent_random`), so every confluent-kafka producer of
account-keyed topics sets ``partitioner=murmur2_random`` (see producer_config), and the
normaliser picks the partition itself with the same function.
"""
from __future__ import annotations

from functools import lru_cache

from aiokafka.partitioner import murmur2


@lru_cache(maxsize=1 << 20)
def partition_for(key: str, partitions: int) -> int:
    return (murmur2(key.encode()) & 0x7FFFFFFF) % partitions


def producer_config(base: dict, **extra) -> dict:
    conf = dict(base)
    conf.update({"partitioner": "murmur2_random", "linger.ms": 5,
                 "enable.idempotence": True, "message.max.bytes": 16 * 1024 * 1024})
    conf.update(extra)
    return conf
