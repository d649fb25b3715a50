# pitr-bot container image.
#   docker build -t pitr-bot .
#   docker run --env-file .env -p 3000:3000 -v pitr-bot-data:/data \
#     -v "$PWD/policy.yml:/etc/pitr-bot/policy.yml:ro" -e PITR_BOT_POLICY=/etc/pitr-bot/policy.yml pitr-bot
# AWS credentials come from the standard chain (env vars, an instance/task role, ...).
# The image will not run the permissive built-in policy (any table, anyone but the requester
# approves) by accident: without PITR_BOT_POLICY it stops with one line saying so, unless
# PITR_BOT_REQUIRE_POLICY=false is given on purpose (docs/operator-guide.md, "Docker").
# python:3.11.10-slim-bookworm (official image, Debian 12), pinned by digest so a rebuild gets
# the same base; bump tag and digest together.
FROM python:3.11.10-slim-bookworm@sha256:5148c0e4bbb64271bca1d3322360ebf4bfb7564507ae32dd639322e4952a6b16

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

# Unprivileged user; /data (owned by it) holds the SQLite state and the item jobs' files and is
# the only writable place. ECS copies the owner into a task volume mounted at /data.
RUN groupadd --system --gid 10001 pitr \
    && useradd --system --uid 10001 --gid pitr --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin pitr \
    && mkdir /data \
    && chown pitr:pitr /data

WORKDIR /app

# Dependencies first, exactly the versions and hashes of requirements.lock (a changed or
# unlisted file fails the build), then the bot itself with no dependency resolution and no
# build isolation (its build backend, setuptools, is in the lock too). As the README says.
COPY requirements.lock ./
RUN pip install --no-cache-dir --require-hashes -r requirements.lock
COPY pyproject.toml README.md ./
COPY bot/ bot/
COPY commands/ commands/
RUN pip install --no-cache-dir --no-deps --no-build-isolation .

# The work directory is set, not derived: with PITR_BOT_STATE=dynamodb://… the default would be
# ./pitr-bot-jobs inside the root-owned /app.
ENV PITR_BOT_STATE=sqlite:////data/pitr-bot.db \
    PITR_BOT_WORK_DIR=/data/pitr-bot-jobs \
    PITR_BOT_REQUIRE_POLICY=true \
    PITR_BOT_PORT=3000
VOLUME ["/data"]

USER 10001:10001
EXPOSE 3000

# slim has no curl: probe /healthz with the standard library.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PITR_BOT_PORT', '3000'), timeout=4)"]

CMD ["pitr-bot", "serve"]
