"""The NTIRE 2025 real-world face restoration scorer, as a plain library.

No Django here: the platform's Celery worker, ``python -m scoring`` and the tests all
call the same functions.
"""

__version__ = "0.1.0"
