"""Tests of devhost, the local Functions host, against Azurite."""
