"""Discord-only helpers of the cogs: views and buttons, what presses do, the settings panel,
failure texts, the check decorators."""
