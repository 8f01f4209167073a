"""tools/bench.py's parts: measure (timing helpers), micro (W1-W5), models (W6-W11, the real
models beside torch), gpu (G1-G3), tables (the Markdown report). bench.py runs them."""
