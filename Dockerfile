# MiniToolAI Bot as a container: a recipe (this project's machines do not build images).
# It runs the same install as `make install` (see the Makefile), then `python -m bot`.
FROM python:3.11-slim

RUN useradd --create-home --uid 10001 bot
WORKDIR /app
COPY --chown=bot:bot . /app
USER bot

# The Makefile's install, word for word ($(PY) is .venv/bin/python).
RUN python3 -m venv .venv \
    && .venv/bin/python -m pip install --quiet --upgrade pip \
    && .venv/bin/python -m pip install --quiet -e '.[dev]'

# SQLite's data directory (the default DATABASE_URL=sqlite:///data/bot.sqlite3).
RUN mkdir -p /app/data
VOLUME ["/app/data"]

# /healthz, /readyz and /metrics when METRICS_LISTEN=0.0.0.0:9108 (see README "Monitoring").
EXPOSE 9108

CMD [".venv/bin/python", "-m", "bot"]
