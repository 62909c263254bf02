"""The process boundary between the asyncio bot and the GPU work. Never imports discord."""
