"""The interfaces (typing.Protocol) that use cases need from the outside world, one module per area."""
