"""The application core: domain rules, use cases, ports and their Azure adapters."""
