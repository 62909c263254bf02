"""Pure torch + Pillow style-transfer engine: no discord, no asyncio, no executor."""
