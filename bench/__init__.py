"""Side-by-side benchmarks of enctune against the tools a user would pick instead.

Run ``python -m bench --help``. The orchestrator (``bench.cli``) never imports torch: every
measured variant runs in a fresh ``python -m bench.worker <variant> <json-args>`` process,
so import costs, allocator state and peak memory of one variant never leak into another.
See ``bench/README.md`` for what each row measures.
"""
