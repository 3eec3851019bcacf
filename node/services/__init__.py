"""Services own transactions and the node's rules; they never import aiohttp."""
