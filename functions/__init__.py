"""Thin triggers, one func.Blueprint per area: decode, validate, call one service, map the result."""
