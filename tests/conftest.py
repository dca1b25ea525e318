"""Suite-wide test settings: nothing here fakes our own code.

pytest-socket (configured in pyproject.toml) lets tests reach only 127.0.0.1/localhost;
httpx-based clients (python-telegram-bot, the openai SDK) must not route loopback through a proxy.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")
os.environ.setdefault("no_proxy", "127.0.0.1,localhost")
# python-telegram-bot: timedelta retry_after without a deprecation warning (warnings are errors here).
os.environ.setdefault("PTB_TIMEDELTA", "true")

# Shared CI machines are noisy: hypothesis must judge correctness, never speed.
settings.register_profile(
    "default", deadline=None, suppress_health_check=[HealthCheck.too_slow], max_examples=100
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
