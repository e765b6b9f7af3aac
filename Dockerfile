# The image for hubs and central on Fly.io (the edge is a Cloudflare Worker: wrangler.toml).
FROM python:3.12-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY geo-routing geo-routing
COPY edge edge
COPY mbhttp mbhttp
COPY regional regional
COPY central central
COPY crdt crdt
COPY devstack devstack
RUN pip install --no-cache-dir ./geo-routing '.[hub,central]'
ENV PYTHONUNBUFFERED=1
