"""HTTP handlers: thin, they parse, call one service and serialise."""
