"""The distributed backend: GPU workers on other hosts, through Celery, with Redis as result
backend, image store (claim check) and progress channel.

- config.py: CeleryConfig and the Celery app, with every setting that matters and why;
- keys.py: the Redis keys and channel both sides use;
- task.py: the worker side, an adapter around JobRunner (`stylebot worker` runs it);
- backend.py: the bot side, a Backend for the dispatcher (the bot never imports torch).
"""
