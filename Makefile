.PHONY: setup demo test up down status bench load edge-bundle
setup: ; scripts/setup
demo: ; scripts/demo
test: ; scripts/test
up: setup ; .venv/bin/memorybank up
down: ; .venv/bin/memorybank down
status: ; .venv/bin/memorybank status
bench: setup ; .venv/bin/python bench/spine_bench.py
load: setup ; scripts/load
# The Worker's python_modules/ for Pyodide, then a wrangler dry-run deploy of every environment.
edge-bundle: ; scripts/edge-bundle --dry-run
