"""Device protocol and host profiler: see profiling/README.md and PROTOCOL.md."""
