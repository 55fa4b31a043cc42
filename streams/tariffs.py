"""The tariff book in force in this worker process (loaded from the configured file)."""
from __future__ import annotations

import logging
import threading

from streams.core.tariff import TariffBook, load_tariff_book
from streams.settings import get_settings

log = logging.getLogger("cdrflow.tariffs")
_lock = threading.Lock()
_book: TariffBook | None = None


def current_book() -> TariffBook:
    global _book
    if _book is None:
        with _lock:
            if _book is None:
                path = get_settings().tariff_file
                _book = load_tariff_book(path)
                log.info("tariff loaded file=%s", path)
    return _book


def replace_book(book: TariffBook) -> None:
    """Swap in a validated book; rating picks it up on the next CDR (no restart)."""
    global _book
    _book = book
