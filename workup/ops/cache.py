"""Django's own Redis cache, made to fail open: a cache that does not answer is a miss.

Everything this app keeps in the cache can be built again from the database (rendered
checklist bodies, keyed by the workup's version), so a Redis that is down, restarting or
slow must cost speed, never a page: a call that cannot reach it logs a warning and answers
as an empty cache would, and the next few seconds do not try again (each try would wait for
the connect timeout that config/settings.py keeps short).
"""

from __future__ import annotations

import logging
import time

from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.core.cache.backends.redis import RedisCache
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)


class FailOpenRedisCache(RedisCache):
    """RedisCache whose reads miss and whose writes are skipped while Redis is unreachable."""

    retry_after_seconds = 5.0

    def __init__(self, server, params):
        super().__init__(server, params)
        self._down_until = 0.0  # Django keeps one cache object per thread: no lock needed

    def _guarded(self, operation: str, miss, call):
        if time.monotonic() < self._down_until:
            return miss
        try:
            return call()
        except RedisError as error:
            self._down_until = time.monotonic() + self.retry_after_seconds
            logger.warning(
                "cache unavailable (%s): %s; pages are built without it for %.0f s",
                operation,
                error,
                self.retry_after_seconds,
            )
            return miss

    def get(self, key, default=None, version=None):
        redis = super()
        return self._guarded("get", default, lambda: redis.get(key, default, version))

    def get_many(self, keys, version=None):
        redis = super()
        return self._guarded("get_many", {}, lambda: redis.get_many(keys, version))

    def has_key(self, key, version=None):
        redis = super()
        return self._guarded("has_key", False, lambda: redis.has_key(key, version))

    def set(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        redis = super()
        self._guarded("set", None, lambda: redis.set(key, value, timeout, version))

    def add(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        redis = super()
        return self._guarded("add", False, lambda: redis.add(key, value, timeout, version))

    def set_many(self, data, timeout=DEFAULT_TIMEOUT, version=None):
        redis = super()
        return self._guarded("set_many", list(data), lambda: redis.set_many(data, timeout, version))

    def touch(self, key, timeout=DEFAULT_TIMEOUT, version=None):
        redis = super()
        return self._guarded("touch", False, lambda: redis.touch(key, timeout, version))

    # Keys name a workup's version, so an entry that could not be deleted is never served
    # for a later version: a skipped delete is safe.
    def delete(self, key, version=None):
        redis = super()
        return self._guarded("delete", False, lambda: redis.delete(key, version))

    def delete_many(self, keys, version=None):
        redis = super()
        self._guarded("delete_many", None, lambda: redis.delete_many(keys, version))

    def clear(self):
        redis = super()
        return self._guarded("clear", False, redis.clear)
