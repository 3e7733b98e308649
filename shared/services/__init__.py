"""Use cases: each drives the domain through the ports in shared.ports."""
