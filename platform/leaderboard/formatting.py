"""How the board's numbers are written in its HTML: Django's ``floatformat:4``, formatted on first use."""

from __future__ import annotations

from functools import cached_property
from typing import Any

from django.template.defaultfilters import floatformat


def format4(value: Any) -> str:
    """The text of ``{{ value|floatformat:4 }}`` (None, NaN and other values as the filter writes them)."""
    return str(floatformat(value, 4))


class FormattedNumbers:
    """For the template, formatted on first use (a JSON reader never pays for it): the numbers as
    ``floatformat:4`` writes them, the metrics in the board's column order."""

    metrics: dict[str, float]
    id_similarity: float
    shown: tuple[str, ...]

    @cached_property
    def cells(self) -> list[str]:
        return [format4(self.metrics.get(m)) for m in self.shown]

    @cached_property
    def id_similarity_text(self) -> str:
        return format4(self.id_similarity)
