"""Memory Bank as an MCP server: stdio, or streamable HTTP on 127.0.0.1.

    memorybank-mcp [--http --port N]                    (MEMORYBANK_URL, MEMORYBANK_TOKEN)
    python -m memorybank_mcp [--http --port N]          (the same)
    memorybank mcp [--data-dir DIR] [--sub NAME] ...    (the local stack; see devstack/cli.py)

It speaks for one principal, the token it is given: MCP clients that connect get that
principal's access, never more, so give each agent its own server and token. One SDK client
serves the whole process, so its consistency token makes every call read the server's own
earlier writes, from any region.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from typing import Any

import anyio
import msgspec
from mcp.server.mcpserver import MCPServer

from memorybank_client import AsyncMemoryBank
from memorybank_mcp import tools

HTTP_HOST = "127.0.0.1"  # never wider: whoever reaches the port acts as the token's principal
INSTRUCTIONS = (
    "Memory Bank: digital twins (profiles as JSON, grants to other principals), a shared "
    "knowledge base with hybrid search, and artifacts attached to twins. All calls act as one "
    "principal; a 403 or 404 in a tool error means that principal may not see the thing.")


class McpTarget(msgspec.Struct, frozen=True, kw_only=True):
    """Where the server sends its calls and as whom."""

    url: str
    token: str

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> McpTarget | None:
        """From MEMORYBANK_URL and MEMORYBANK_TOKEN; None unless both are set."""
        url, token = environ.get("MEMORYBANK_URL"), environ.get("MEMORYBANK_TOKEN")
        return cls(url=url, token=token) if url and token else None


def build_server(mb: AsyncMemoryBank) -> MCPServer[Any]:
    server: MCPServer[Any] = MCPServer("memorybank", instructions=INSTRUCTIONS,
                                       log_level="WARNING")
    tools.register(server, mb)
    return server


async def serve(target: McpTarget, *, http_port: int | None = None) -> None:
    """Serve until the client hangs up (stdio) or the process is stopped (HTTP)."""
    async with AsyncMemoryBank(target.url, target.token) as mb:
        server = build_server(mb)
        if http_port is None:
            await server.run_stdio_async()
        else:
            await server.run_streamable_http_async(host=HTTP_HOST, port=http_port)


def run(target: McpTarget, *, http_port: int | None = None) -> int:
    try:
        anyio.run(lambda: serve(target, http_port=http_port))
    except KeyboardInterrupt:
        return 130
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="memorybank-mcp",
                                     description="Memory Bank MCP server (one principal)")
    parser.add_argument("--http", action="store_true",
                        help=f"serve streamable HTTP at http://{HTTP_HOST}:PORT/mcp, not stdio")
    parser.add_argument("--port", type=int, default=8765, help="the HTTP port (default 8765)")
    args = parser.parse_args(argv)
    target = McpTarget.from_env()
    if target is None:
        print("set MEMORYBANK_URL and MEMORYBANK_TOKEN (or use `memorybank mcp --data-dir DIR`)",
              file=sys.stderr)
        return 2
    return run(target, http_port=args.port if args.http else None)


if __name__ == "__main__":
    sys.exit(main())
