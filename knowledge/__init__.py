"""Knowledge search parts shared by central (ingest) and the hubs (query): chunking, the
embedder behind one interface, and rank fusion. No I/O here except the embedder's own calls."""
