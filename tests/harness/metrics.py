"""``/metrics`` parsed with prometheus_client's own text parser."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

Series = tuple[str, frozenset[tuple[str, str]]]  # a sample's name and its label set
Samples = dict[Series, float]


def series(name: str, **labels: str) -> Series:
    return name, frozenset(labels.items())


def parse(text: str) -> Samples:
    return {
        series(sample.name, **sample.labels): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def scrape(http: httpx.AsyncClient) -> Samples:
    response = await http.get("/metrics")
    assert response.status_code == 200, response.text
    return parse(response.text)


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sample with exactly these labels; 0 when it is not exposed (a counter not yet hit)."""
    return samples.get(series(name, **labels), 0.0)
