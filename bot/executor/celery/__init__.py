"""The distributed backend, the bot's side: GPU workers on other hosts, through Celery, with Redis
as result backend, image store (claim check) and progress channel.

- backend.py: a Backend for the dispatcher (the bot never imports torch);
- what both sides share (the keys, CeleryConfig, the app, the task message) is in bot/protocol/;
  the worker's side is bot/worker/celery_task.py (`stylebot worker` runs it).
"""
