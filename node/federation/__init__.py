"""Federation: nodes talking to nodes over signed HTTP (SPEC §10, §14; DESIGN §2, §4)."""
