"""Tariffs and rating: load a price list, price a canonical CDR. Pure; see model.py for the rules."""
from streams.core.tariff.loader import default_tariff_path, load_tariff_book, parse_tariff_text
from streams.core.tariff.model import Rating, TariffError
from streams.core.tariff.rating import TariffBook

__all__ = ["TariffBook", "Rating", "TariffError", "load_tariff_book", "parse_tariff_text", "default_tariff_path"]
