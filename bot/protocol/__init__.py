"""What the bot's process and the workers' processes share, and nothing else: neither
bot/executor/ (the bot's side) nor bot/worker/ (the GPU's side) imports the other.

- messages.py: Job, the events, JobStatus, the pipe messages of the local pool and the Celery
  task message (bytes and small dataclasses only: never tensors);
- celery_keys.py: the Redis keys and the progress channel both sides use;
- celery_config.py, celery_app.py: CeleryConfig and the Celery app both sides build;
- entry.py: how a local worker process is started, by module name.
"""
