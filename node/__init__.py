"""The Tadamun node: the server an organisation runs for its members and its federation."""
