"""Environment -> Settings. Names are the contract (docs/operator-guide.md); secrets never print."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

STATE_URL = re.compile(r"^(sqlite:///.+|dynamodb://[A-Za-z0-9_.-]{3,255})$")
# An EventBridge bus: its name (1-256 of these characters) or its ARN.
EVENT_BUS = re.compile(
    r"^([A-Za-z0-9._/-]{1,256}|arn:aws[a-z-]*:events:[a-z0-9-]+:\d{12}:event-bus/[A-Za-z0-9._/-]{1,256})$"
)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", populate_by_name=True
    )

    slack_bot_token: SecretStr | None = Field(default=None, alias="SLACK_BOT_TOKEN")
    slack_signing_secret: SecretStr | None = Field(default=None, alias="SLACK_SIGNING_SECRET")
    slack_app_token: SecretStr | None = Field(default=None, alias="SLACK_APP_TOKEN")
    slack_api_url: str = Field(default="https://slack.com/api/", alias="SLACK_API_URL")
    policy_path: str | None = Field(default=None, alias="PITR_BOT_POLICY")
    # true (the container image): refuse to serve the permissive built-in policy by mistake.
    require_policy: bool = Field(default=False, alias="PITR_BOT_REQUIRE_POLICY")
    state: str = Field(default="sqlite:///pitr-bot.db", alias="PITR_BOT_STATE")
    poll_seconds: float = Field(default=10, gt=0, le=3600, alias="PITR_BOT_POLL_SECONDS")
    # Polling that follows the ETA (bot/polling.py): densest / sparsest interval.
    poll_min_seconds: float = Field(default=2, gt=0, le=3600, alias="PITR_BOT_POLL_MIN_SECONDS")
    poll_max_seconds: float = Field(default=60, gt=0, le=3600, alias="PITR_BOT_POLL_MAX_SECONDS")
    # The call budget of planned polling (bot/poll_plan.py): no more DescribeTable calls than
    # boto3's table_exists waiter (a call every 20 s) would make. Benchmarks scale it with time.
    poll_budget_seconds: float = Field(
        default=20, gt=0, le=3600, alias="PITR_BOT_POLL_BUDGET_SECONDS"
    )
    # The expected duration of a restore of a table with no history at all (0: no estimate).
    min_restore_minutes: float = Field(
        default=0, ge=0, le=7 * 24 * 60, alias="PITR_BOT_MIN_RESTORE_MINUTES"
    )
    port: int = Field(default=3000, ge=0, le=65535, alias="PITR_BOT_PORT")
    host: str = Field(default="0.0.0.0", alias="PITR_BOT_HOST")  # noqa: S104 - a server binds all
    log_level: str = Field(default="INFO", alias="PITR_BOT_LOG_LEVEL")
    log_format: str = Field(default="json", alias="PITR_BOT_LOG_FORMAT")
    # HOST:PORT for /readyz and /metrics (e.g. 127.0.0.1:9100); unset = on the Slack port.
    ops_bind: str | None = Field(default=None, alias="PITR_BOT_OPS_BIND")
    # Item comparisons and copy backs keep their job files here (unset: next to the SQLite
    # state, or ./pitr-bot-jobs with a DynamoDB state).
    work_dir: str | None = Field(default=None, alias="PITR_BOT_WORK_DIR")
    # Pace of item comparisons (read units/s) and copy backs (write units/s), per job.
    items_read_units: float = Field(
        default=200, gt=0, le=1_000_000, alias="PITR_BOT_ITEMS_READ_UNITS"
    )
    items_write_units: float = Field(
        default=50, gt=0, le=1_000_000, alias="PITR_BOT_ITEMS_WRITE_UNITS"
    )
    # Days the files of a finished item job are kept (Undo copy back is possible until then).
    items_retention_days: float = Field(
        default=7, gt=0, le=3650, alias="PITR_BOT_ITEMS_RETENTION_DAYS"
    )
    # Where incremental exports go (`s3://bucket/prefix`): /pitr-diff LIVE_TABLE WHEN.
    export_s3: str | None = Field(default=None, alias="PITR_BOT_EXPORT_S3")

    @field_validator("export_s3")
    @classmethod
    def _export_s3(cls, v: str | None) -> str | None:
        from bot.items.export_plan import parse_s3  # noqa: PLC0415 - a pure helper

        if v:
            parse_s3(v)
        return v or None

    # The customer managed KMS key (its ARN) of an SSE-KMS export bucket; unset = none.
    export_s3_kms_key: str | None = Field(default=None, alias="PITR_BOT_EXPORT_S3_KMS_KEY")

    @field_validator("export_s3_kms_key")
    @classmethod
    def _export_s3_kms_key(cls, v: str | None) -> str | None:
        from bot.items.export_plan import check_kms_key  # noqa: PLC0415 - a pure helper

        return check_kms_key(v)

    # Limits on floods (issue 20): each refusal is ephemeral and changes nothing.
    # Restore requests waiting for a decision (approval cards): per requester, and in all.
    max_open_requests_per_user: int = Field(
        default=10, ge=1, le=10_000, alias="PITR_BOT_MAX_OPEN_REQUESTS_PER_USER"
    )
    max_open_requests: int = Field(
        default=100, ge=1, le=100_000, alias="PITR_BOT_MAX_OPEN_REQUESTS"
    )
    # Item comparisons running at once: per person, and in all (one per table always).
    max_item_jobs_per_user: int = Field(
        default=2, ge=1, le=1000, alias="PITR_BOT_MAX_ITEM_JOBS_PER_USER"
    )
    max_item_jobs: int = Field(default=4, ge=1, le=1000, alias="PITR_BOT_MAX_ITEM_JOBS")
    # An item job starts only with this much free space where its files go (PITR_BOT_WORK_DIR).
    min_free_disk_mb: int = Field(
        default=1024, ge=0, le=10_000_000, alias="PITR_BOT_MIN_FREE_DISK_MB"
    )
    # Drills running at once: started by one person (/pitr-drill), and in all.
    max_drills_per_user: int = Field(default=2, ge=1, le=1000, alias="PITR_BOT_MAX_DRILLS_PER_USER")
    max_drills: int = Field(default=5, ge=1, le=50, alias="PITR_BOT_MAX_DRILLS")
    # Of an account's 50 concurrent restores, this many are kept for approved restores: a drill
    # starts only while restores and drills running there leave them free.
    drill_reserved_slots: int = Field(
        default=10, ge=0, le=49, alias="PITR_BOT_DRILL_RESERVED_SLOTS"
    )

    # EventBridge bus for restore events (bot/restore_events.py); unset = none.
    event_bus: str | None = Field(default=None, alias="PITR_BOT_EVENT_BUS")

    @field_validator("event_bus")
    @classmethod
    def _event_bus(cls, v: str | None) -> str | None:
        if not v:
            return None
        if not EVENT_BUS.match(v):
            raise ValueError("must be an EventBridge bus name (e.g. incidents) or its ARN")
        return v

    @field_validator("state")
    @classmethod
    def _state(cls, v: str) -> str:
        if not STATE_URL.match(v):
            raise ValueError("must be sqlite:///PATH or dynamodb://TABLE")
        return v

    @model_validator(mode="after")
    def _poll_range(self) -> Settings:
        if self.poll_min_seconds > self.poll_max_seconds:
            raise ValueError(
                "PITR_BOT_POLL_MIN_SECONDS must not be larger than PITR_BOT_POLL_MAX_SECONDS"
            )
        return self

    @field_validator("slack_api_url")
    @classmethod
    def _api_url(cls, v: str) -> str:
        if not v.startswith(("https://", "http://")):
            raise ValueError("must be an http(s) URL")
        return v if v.endswith("/") else v + "/"

    @field_validator("ops_bind")
    @classmethod
    def _ops_bind(cls, v: str | None) -> str | None:
        if not v:
            return None
        host, _, port = v.rpartition(":")
        if not host or not port.isdigit() or int(port) > 65535:
            raise ValueError("must be HOST:PORT, e.g. 127.0.0.1:9100")
        return v

    @field_validator("log_level")
    @classmethod
    def _level(cls, v: str) -> str:
        v = v.upper()
        if v not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ValueError("must be DEBUG, INFO, WARNING or ERROR")
        return v

    @field_validator("log_format")
    @classmethod
    def _format(cls, v: str) -> str:
        v = v.lower()
        if v not in {"json", "text"}:
            raise ValueError("must be json or text")
        return v

    @property
    def socket_mode(self) -> bool:
        return self.slack_app_token is not None and bool(self.slack_app_token.get_secret_value())

    def problems_for_serving(self) -> list[str]:
        """What is missing to connect to Slack in the chosen mode."""
        found = []
        if not _secret(self.slack_bot_token):
            found.append("SLACK_BOT_TOKEN is not set (the bot token, xoxb-…)")
        elif not _secret(self.slack_bot_token).startswith("xoxb-"):
            found.append("SLACK_BOT_TOKEN must be a bot token starting with xoxb-")
        if self.socket_mode:
            if not _secret(self.slack_app_token).startswith("xapp-"):
                found.append("SLACK_APP_TOKEN must be an app-level token starting with xapp-")
        elif not _secret(self.slack_signing_secret):
            found.append(
                "SLACK_SIGNING_SECRET is not set (needed in HTTP mode to verify requests; "
                "or set SLACK_APP_TOKEN for Socket Mode)"
            )
        return found


def _secret(value: SecretStr | None) -> str:
    return value.get_secret_value() if value is not None else ""


def load_settings() -> tuple[Settings | None, list[str]]:
    """Settings from the environment, and every problem with them at once.

    A bad value does not hide the others: it is reported and replaced by its default, so the
    rest (token types, the policy file...) can still be checked. Callers must not serve while
    `problems` is not empty. None only if even the defaults cannot be read.
    """
    try:
        return Settings(), []
    except ValidationError as exc:
        problems = [f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()]
        bad = {str(err["loc"][0]) for err in exc.errors() if err["loc"]}
    defaults = {
        field.alias: field.default
        for field in Settings.model_fields.values()
        if field.alias in bad and field.alias
    }
    try:
        return Settings(**defaults), problems
    except ValidationError:
        return None, problems


def work_dir_of(settings: Settings) -> Path:
    """Where item jobs keep their files: PITR_BOT_WORK_DIR, else beside the SQLite state."""
    if settings.work_dir:
        return Path(settings.work_dir)
    prefix = "sqlite:///"
    if settings.state.startswith(prefix) and settings.state != prefix + ":memory:":
        return Path(settings.state.removeprefix(prefix)).parent / "pitr-bot-jobs"
    return Path("pitr-bot-jobs")
