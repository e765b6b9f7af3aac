"""memorybank-mcp: Memory Bank as an MCP server, one tool per action of the service's action
table, through the Python SDK (``memorybank_client``) for one principal."""
