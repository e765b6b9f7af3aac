"""What central and the hubs build from their settings for artifacts."""

from __future__ import annotations

from pathlib import Path

import pytest

from blobs.local import LocalBlobStore
from blobs.room import ArtifactBlobs, check_artifact_id, is_text
from mbwire import Forbidden, Unavailable, Unprocessable


def test_unconfigured_services_answer_503_not_500() -> None:
    blobs = ArtifactBlobs.configure(blob_url="", secret="", public_url="", ttl_s=60)
    with pytest.raises(Unavailable):
        blobs.require()
    with pytest.raises(Unavailable):
        blobs.signed_url("PUT", "a1")


def test_configured_urls_point_at_the_public_edge_and_verify(tmp_path: Path) -> None:
    blobs = ArtifactBlobs.configure(blob_url=str(tmp_path), secret="k" * 32,
                                    public_url="http://edge.test", ttl_s=60)
    assert isinstance(blobs.store, LocalBlobStore)
    url, _ = blobs.download_url("a1")
    assert url.startswith("http://edge.test/v1/artifacts/a1/content?exp=")
    query = dict(part.split("=", 1) for part in url.split("?", 1)[1].split("&"))
    blobs.verify("GET", "a1", query)
    with pytest.raises(Forbidden):
        blobs.verify("PUT", "a1", query)


@pytest.mark.parametrize(("media", "text"), [
    ("text/plain", True), ("text/markdown", True), ("application/json", True),
    ("application/ld+json", True), ("application/markdown", True),
    ("application/octet-stream", False), ("image/png", False), ("application/pdf", False),
])
def test_what_counts_as_text(media: str, text: bool) -> None:
    assert is_text(media) is text


def test_artifact_ids_are_checked() -> None:
    assert check_artifact_id("abc-1") == "abc-1"
    with pytest.raises(Unprocessable):
        check_artifact_id("../x")
