import sys

from memorybank_mcp.server import main

sys.exit(main())
