"""Discord-facing parts: slash commands, buttons, error handling."""
