"""The bot side of a job, from an accepted request to its last message: intake (headers only),
launch, cooldown claims, following events into the job's row and message, picks, replies."""
