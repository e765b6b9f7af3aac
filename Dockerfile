# The image for hubs and central on Fly.io (the edge is a Cloudflare Worker: wrangler.toml).
FROM python:3.12-slim
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app

# Dependencies first and from the lock alone (exact versions, every file checked against its
# hash), so a code change reuses this layer; scripts/lock regenerates it.
COPY requirements/deploy.lock requirements/deploy.lock
RUN pip install --require-hashes -r requirements/deploy.lock

COPY pyproject.toml README.md ./
COPY wire wire
COPY geo-routing geo-routing
COPY edge edge
COPY mbhttp mbhttp
COPY regional regional
COPY central central
COPY crdt crdt
COPY sealing sealing
COPY devstack devstack
COPY ops ops
COPY examples examples
COPY knowledge knowledge
COPY blobs blobs
# Our packages on top, without dependencies (all locked above) and with the locked setuptools.
# The hubs' int8 query graph, derived from the pinned model here, once, into the image (a hub
# reads it from MEMORYBANK_MODEL_CACHE at start: knowledge/embed_local.py).
ENV MEMORYBANK_MODEL_CACHE=/app/models
RUN pip install --no-deps --no-build-isolation ./wire ./geo-routing . \
    && python -c "from knowledge.embed_local import LocalEmbedder; LocalEmbedder(compute='int8')" \
    && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin memorybank \
    && chmod -R a+rX /app

# Run time needs no root: the services only listen on 8080 and write to stdout. Everything
# above belongs to root and is read-only for this user.
USER memorybank
