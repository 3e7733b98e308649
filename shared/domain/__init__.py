"""Pure domain rules: no I/O, no Azure imports, no clock reads."""
