"""The region catalog: the one place that says which regions exist, where they are, and where
each environment's hub for a region lives. The edge, the hubs, the dev stack and fly.toml agree
with this file (tests/unit/georouting/test_catalog_agreement.py checks that they do).

Region ids are Fly.io region codes."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Region:
    id: str
    city: str
    lat: float
    lon: float


REGIONS: dict[str, Region] = {
    r.id: r
    for r in (
        Region("ams", "Amsterdam", 52.374, 4.890),
        Region("arn", "Stockholm", 59.651, 17.918),
        Region("bom", "Mumbai", 19.097, 72.874),
        Region("cdg", "Paris", 48.860, 2.350),
        Region("dfw", "Dallas", 32.778, -96.797),
        Region("fra", "Frankfurt", 50.110, 8.682),
        Region("gru", "Sao Paulo", -23.550, -46.633),
        Region("iad", "Ashburn", 39.044, -77.487),
        Region("jnb", "Johannesburg", -26.204, 28.047),
        Region("lax", "Los Angeles", 33.942, -118.408),
        Region("lhr", "London", 51.507, -0.128),
        # Moscow is no Fly.io region: the zone ru's cells run there on a Russian provider's
        # machines (the same images), and no Cloudflare location stores or caches their data.
        Region("mow", "Moscow", 55.756, 37.617),
        Region("nrt", "Tokyo", 35.689, 139.692),
        Region("ord", "Chicago", 41.878, -87.630),
        Region("sin", "Singapore", 1.352, 103.820),
        Region("sjc", "San Jose", 37.339, -121.895),
        Region("syd", "Sydney", -33.869, 151.209),
        Region("yyz", "Toronto", 43.653, -79.383),
    )
}

# The regions a deployment runs by default, and where the primary (central writer) lives.
DEFAULT_REGIONS: tuple[str, ...] = ("ams", "iad", "sin")
PRIMARY_REGION = "ams"

# Where each environment's hub for a region answers. "local" is filled in by the dev stack
# from its data directory's ports, so it has no template here.
HUB_URL_TEMPLATES: dict[str, str] = {
    "production": "https://memorybank-hub-{region}.fly.dev",
    "staging": "https://memorybank-hub-staging-{region}.fly.dev",
}


def hub_urls(environment: str, regions: tuple[str, ...] = DEFAULT_REGIONS) -> dict[str, str]:
    template = HUB_URL_TEMPLATES[environment]
    return {r: template.format(region=r) for r in regions}


def check_regions(ids: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Validates a region list (known codes, no duplicates, at least one)."""
    unknown = [r for r in ids if r not in REGIONS]
    if unknown:
        raise ValueError(
            f"unknown region code(s) {', '.join(unknown)}; known: {', '.join(REGIONS)}"
        )
    if not ids:
        raise ValueError("at least one region is needed")
    if len(set(ids)) != len(ids):
        raise ValueError("a region is listed twice")
    return tuple(ids)
