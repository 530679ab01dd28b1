"""Settings: environment variables and OpenFaaS secret files, built on first use, never at import.

Every field maps to an upper-case environment variable of the same name (``jwt_secret`` ->
``JWT_SECRET``) and to a secret file ``/var/openfaas/secrets/<hyphenated-name>`` (``jwt-secret``);
an environment variable wins over a secret file. `.env.example` lists every setting.
"""

from __future__ import annotations

import re
import secrets
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict

INSECURE_SECRETS = {"", "changeme", "change-me", "secret", "dev", "development", "jwt-secret"}
MIN_SECRET_BYTES = 32
RATE_LIMIT_PATTERN = r"\d+(/\d+)?"  # requests[/seconds]


class OpenFaaSSecretsSource(PydanticBaseSettingsSource):
    """Reads `<secrets_dir>/<field-name-with-hyphens>` files (OpenFaaS mounts secrets this way)."""

    def __init__(self, settings_cls: type[BaseSettings], secrets_dir: Path):
        super().__init__(settings_cls)
        self.secrets_dir = secrets_dir

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        path = self.secrets_dir / field_name.replace("_", "-")
        try:
            return path.read_text().strip(), field_name, False
        except (FileNotFoundError, NotADirectoryError, PermissionError):
            return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        if not self.secrets_dir.is_dir():
            return {}
        values: dict[str, Any] = {}
        for name, field in self.settings_cls.model_fields.items():
            value, key, _ = self.get_field_value(field, name)
            if value is not None:
                values[key] = value
        return values


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    # --- runtime -------------------------------------------------------------------------------
    env: Literal["dev", "test", "production"] = Field(
        "production",
        validation_alias="AITEACHER_ENV",
        description="dev and test allow a generated JWT secret; production refuses to start without a strong one.",
    )
    data_dir: Path = Field(Path(".data"), description="Embedded stores (SQLite, Qdrant Edge, outbox) live here.")
    secrets_dir: Path = Field(Path("/var/openfaas/secrets"), description="Where OpenFaaS mounts secret files.")
    function_name: str = Field("", description="Set per function by stack.yml; used in logs and rate-limit keys.")
    log_level: str = Field("INFO", description="Level of every logger (one JSON line per record on stderr).")
    worker_metrics_port: int = Field(
        9100,
        ge=0,
        le=65535,
        description="`aiteacher worker` serves Prometheus "
        "metrics (job duration, failures, queue depth) here; 0 turns it off.",
    )
    app_timeout: str = Field(
        "",
        description="A function answers 504 after this long (Go duration, e.g. 55s); "
        "empty: 2 s before of-watchdog's exec_timeout.",
    )
    audit_log_file: Path | None = Field(None, description="Append audit JSON lines here as well as to stdout.")
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Origins allowed to call the API from a browser (comma-separated)."
    )
    max_json_body_bytes: int = Field(256 * 1024, ge=1024, description="Largest JSON request body (413 beyond).")
    api_gateway_base_path: str = Field(
        "", description="Lambda behind an API Gateway route on the REST alias: strip this prefix (e.g. /auth/login)."
    )
    trusted_proxies: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Networks (CIDRs, comma-separated) of the reverse proxies in front of the function; "
        "X-Forwarded-For is read right to left past them. Empty: trust no proxy, use the peer.",
    )

    # --- database ------------------------------------------------------------------------------
    database_url: str = Field("", description="SQLAlchemy URL; empty means SQLite under data_dir.")
    database_read_url: str = Field("", description="Optional read replica used by GET functions.")
    read_your_writes_seconds: int = Field(
        60,
        ge=1,
        le=3600,
        description="After a caller's write, their reads use the replica only once it has replayed that write "
        "(WAL position kept this long in Redis); until then, and whenever unsure, the primary.",
    )
    replica_retry_seconds: float = Field(
        5.0, ge=0.1, le=600, description="After the replica failed to connect, reads go to the primary this long."
    )
    db_pool_size: int = 5
    db_max_overflow: int = 5
    db_use_pgbouncer: bool = Field(
        False,
        description="Transaction pooling in front: no server-side prepared statements or session state.",
    )
    seed_demo: bool | None = Field(None, description="Seed the demo faculties into an empty DB (default: in dev/test).")

    # --- redis ---------------------------------------------------------------------------------
    redis_url: str = Field("", description="Redis/Valkey URL; `make dev` starts an embedded Valkey when empty.")
    redis_timeout_seconds: float = 1.0
    redis_async_timeout_seconds: float = Field(
        5.0,
        gt=0,
        le=60,
        description="Connect, read and pool-wait timeout of the asyncio Redis client (the request path: admission, "
        "answer cache). Its clock also runs while a busy replica's event loop works through other requests before "
        "it resumes this one, so it is wider than REDIS_TIMEOUT_SECONDS (the threads' client); a Redis that is "
        "down still fails at once (connection refused).",
    )
    function_concurrency: int = Field(
        256,
        ge=1,
        le=100000,
        description="Requests one function process serves at once (of-watchdog max_inflight / Knative "
        "containerConcurrency); Redis pools are sized from it.",
    )
    redis_max_connections: int = Field(
        0,
        ge=0,
        le=100000,
        description="Redis connections per pool; 0 sizes it from FUNCTION_CONCURRENCY (+16). A request waits "
        "up to REDIS_TIMEOUT_SECONDS for a free connection instead of failing.",
    )

    # --- identity ------------------------------------------------------------------------------
    jwt_secret: str = Field("", description="HS256 key, at least 32 bytes outside dev.")
    jwt_required: bool = Field(
        True,
        description="Refuse to start without a strong JWT key. The commands that "
        "never sign or verify a token (migrate, create-admin, events sqs-forward) set "
        "it false for themselves.",
    )
    jwt_algorithm: Literal["HS256", "EdDSA", "RS256"] = "HS256"
    jwt_private_key_file: Path | None = None
    jwt_public_key_file: Path | None = None
    jwt_issuer: str = "aiteacher"
    jwt_audience: str = "aiteacher-api"
    access_token_ttl_seconds: int = Field(900, ge=60, le=3600)
    refresh_token_ttl_seconds: int = Field(7 * 24 * 3600, ge=3600, le=90 * 24 * 3600)
    profile_cache_seconds: int = Field(
        300, ge=0, le=3600, description="How long a caller's profile stays cached in Redis (0 disables)."
    )
    admin_email: str = ""
    admin_password: str = ""

    # --- rate limits ---------------------------------------------------------------------------
    rate_limit_requests: int = Field(120, ge=1, description="Default requests per window per caller per function.")
    rate_limit_window_seconds: int = Field(60, ge=1)
    rate_limit: str = Field(
        "",
        pattern=rf"^({RATE_LIMIT_PATTERN})?$",
        description="This function's limit as requests/seconds, set per function by stack.yml (RATE_LIMIT in its "
        "environment); empty: RATE_LIMIT_REQUESTS per RATE_LIMIT_WINDOW_SECONDS.",
    )
    rate_limits: dict[str, str] | None = Field(
        None,
        description='Overrides of every function\'s limit as {"function": "requests/seconds"} (JSON). When set it '
        "replaces the stack.yml limits: a function it does not name gets the default (tests and benchmarks).",
    )
    rate_limit_admin_multiplier: int = Field(
        10, ge=1, le=1000, description="Admins get this many times the limit (bulk account creation, uploads)."
    )
    login_max_failures: int = Field(
        10,
        ge=1,
        le=10000,
        description="Failed logins per account from one client address per window (then 429 for that address only).",
    )
    login_max_failures_per_account: int = Field(
        100, ge=1, le=100000, description="Failed logins per account from all addresses per window (then 429)."
    )
    login_max_failures_per_ip: int = Field(
        100, ge=1, le=100000, description="Failed logins per client address per window (campus NATs share addresses)."
    )
    login_failure_window_seconds: int = Field(900, ge=1, le=86400)
    login_free_failures: int = Field(
        3, ge=0, le=100, description="Failures of an account from one address before the progressive delay starts."
    )
    login_max_delay_seconds: int = Field(
        60, ge=1, le=3600, description="Longest delay between attempts of one account from one address."
    )

    # --- object store, events and jobs ---------------------------------------------------------
    s3_endpoint_url: str = Field("", description="S3/MinIO/LocalStack endpoint; `make dev` starts moto on S3_PORT.")
    s3_bucket: str = Field("curriculum", description="Bucket for PDFs: <faculty>/<semester>/<course>/<name>.pdf")
    s3_region: str = "us-east-1"
    s3_access_key_id: str = ""
    s3_secret_access_key: str = ""
    events_token: str = Field("", description="Bearer token the bucket webhook / event forwarder must present.")
    events_queue_url: str = Field("", description="SQS queue receiving bucket notifications (sqs-forward reads it).")
    events_buckets: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Buckets whose events are ingested (comma-separated); empty means S3_BUCKET only.",
    )
    events_max_records: int = Field(100, ge=1, le=10000, description="Records accepted per event (the rest ignored).")
    events_max_receives: int = Field(
        5, ge=1, le=1000, description="Deliveries of one SQS message before it goes to the dead-letter queue."
    )
    events_dlq_url: str = Field("", description="Dead-letter queue the forwarder moves exhausted messages to.")
    ingest_max_bytes: int = Field(50 * 1024 * 1024, ge=1024, description="Largest accepted PDF (413 beyond).")
    pdf_max_pages: int = Field(500, ge=1, description="PDFs with more pages fail ingestion.")
    pdf_max_decompressed_bytes: int = Field(
        200 * 1024 * 1024, ge=1024 * 1024, description="Decompressed-content cap per PDF (bomb guard)."
    )
    ingest_ocr: bool = Field(True, description="Recognise scanned PDF pages (no text layer) with OCR in the worker.")
    ingest_ocr_max_pages: int = Field(100, ge=1, description="PDFs with more scanned pages than this fail ingestion.")
    ingest_ocr_dpi: int = Field(300, ge=72, le=600, description="Resolution scanned pages are rendered at for OCR.")
    ingest_max_zip_entries: int = Field(5000, ge=10, description="Parts an Office (.pptx/.docx) file may hold.")
    chunk_chars: int = Field(1000, ge=200, le=8000, description="Target chunk size in characters.")
    chunk_overlap_chars: int = Field(200, ge=0, le=2000, description="Overlap between chunks of a page.")
    ingest_job_timeout_seconds: int = Field(600, ge=10, description="An ingestion job running longer is killed.")
    job_max_retries: int = Field(3, ge=0, le=10, description="Retries of a failed job (at-least-once delivery).")
    worker_threads: int = Field(2, ge=1, le=16, description="In-process worker threads in `make dev`.")
    job_retry_base_seconds: float = Field(
        5.0, ge=0, le=3600, description="First retry delay of a failed job; doubles per retry, with jitter."
    )
    job_retry_max_seconds: float = Field(300.0, ge=0, le=86400, description="Longest delay between job retries.")
    reconcile_interval_seconds: float = Field(
        30.0, ge=0.1, le=3600, description="How often a worker checks for queued/processing work with no live job."
    )
    reconcile_grace_seconds: float = Field(
        60.0,
        ge=0,
        le=86400,
        description="A document or exam waits this long in queued/processing with no live job before the "
        "reconciler re-enqueues it (or fails it once its attempts are spent).",
    )
    worker_heartbeat_seconds: float = Field(
        5.0,
        ge=0.2,
        le=300,
        description="`aiteacher worker` heartbeat period; a worker silent for 3 periods is dead, its jobs re-queued.",
    )
    worker_maintenance_seconds: int = Field(
        60, ge=1, le=3600, description="RQ maintenance interval: abandoned jobs of dead workers go back this fast."
    )
    search_cache_seconds: int = Field(600, ge=0, le=86400, description="Search results cache TTL (0 disables).")
    qdrant_url: str = Field("", description="Qdrant server; empty means Qdrant Edge on disk under data_dir.")
    qdrant_api_key: str = ""
    qdrant_collection: str = "curriculum"
    qdrant_timeout_seconds: int = Field(10, ge=1, le=300, description="Request timeout towards the Qdrant server.")
    embedding_provider: Literal["local", "openai"] = "local"
    openai_api_key: str = ""
    openai_base_url: str = ""
    openai_embedding_model: str = "text-embedding-3-small"
    openai_embedding_batch_size: int = Field(
        256,
        ge=1,
        le=2048,
        description="Texts per embeddings request to the OpenAI(-compatible) server.",
    )
    embedding_threads: int = Field(
        0,
        ge=0,
        le=64,
        description="onnxruntime intra-op threads of the local embedder; 0 means min(2, CPU count).",
    )
    openai_chat_model: str = "gpt-4o-mini"
    openai_timeout_seconds: float = 30.0
    openai_max_retries: int = 2

    # --- LLM (tutor answers, exam items, learning-state summaries, moderation) ----------------
    llm_provider: Literal["auto", "offline", "openai"] = Field(
        "auto",
        description="auto: the OpenAI(-compatible) server when OPENAI_API_KEY is set, else the offline provider.",
    )
    openai_moderation_model: str = Field(
        "omni-moderation-latest",
        description="Moderation model; a server without /v1/moderations falls back to the offline word list.",
    )
    openai_max_output_tokens: int = Field(
        2000,
        ge=64,
        le=32000,
        description="Upper bound on tokens the LLM may generate per request.",
    )
    llm_max_source_chars: int = Field(
        16000,
        ge=1000,
        le=200000,
        description="Characters of retrieved course text sent to the LLM per request (passages beyond are cut).",
    )
    llm_max_history_turns: int = Field(
        8,
        ge=0,
        le=50,
        description="Most recent chat turns sent to the LLM with a tutor question.",
    )

    # --- tutor, exams, notifications -----------------------------------------------------------
    tutor_min_score: float = Field(
        0.25,
        ge=0.0,
        le=1.0,
        description="Grounding gate: the floor a chunk's search score must clear to ground an "
        "answer (see docs/tutor.md, calibrated with bench/bench_grounding.py).",
    )
    tutor_confident_score: float = Field(
        0.6,
        ge=0.0,
        le=1.0,
        description="Grounding gate: a chunk scoring this high grounds an answer even with no "
        "topic word in common with the question (a paraphrase).",
    )
    tutor_min_overlap: float = Field(
        0.6, ge=0.0, le=1.0, description="Grounding gate: share of the question's topic words a chunk must contain."
    )
    tutor_min_margin: float = Field(
        0.05,
        ge=-1.0,
        le=1.0,
        description="Grounding gate: how far the best chunk's score must stand above the median of the other results.",
    )
    tutor_retrieval_workers: int = Field(
        4,
        ge=1,
        le=64,
        description="Threads of the chat function's bounded executor for retrieval (local "
        "embedder CPU work, sync vector and cache clients); the event loop never blocks on them.",
    )
    tutor_transaction_workers: int = Field(
        4,
        ge=1,
        le=64,
        description="Threads of the chat function's executor for a turn's two short transactions (read before "
        "the model call, write after it). Few, first come first served: a burst of turns reaches the model in "
        "arrival order instead of all at the end of the burst. At most the database pool's size.",
    )
    oldest_first_slots: int = Field(
        2,
        ge=0,
        le=64,
        description="Requests of the chat function that run at once in a worker, oldest first: one keeps its slot "
        "through its Redis and database round trips and lets it go while it waits on the model (or on anything "
        "slow). A burst of turns is then served in arrival order, not round-robin (all finishing at the end of "
        "the burst). 0: plain asyncio round-robin.",
    )
    tutor_top_k: int = Field(5, ge=1, le=20, description="Chunks retrieved per tutor question.")
    chat_max_message_chars: int = Field(2000, ge=100, le=20000, description="Longest student message.")
    chat_cache_seconds: int = Field(6 * 3600, ge=0, le=24 * 3600, description="Tutor answer cache TTL (max 24 h).")
    summary_every_messages: int = Field(6, ge=2, le=100, description="Learning-state summary every N messages.")
    exam_max_mcq: int = Field(20, ge=1, le=100)
    exam_max_theory: int = Field(10, ge=0, le=50)
    exam_job_timeout_seconds: int = Field(
        900, ge=30, description="An exam generation or grading job running longer is killed."
    )
    summary_job_timeout_seconds: int = Field(
        120, ge=10, description="A learning-state summary job running longer is killed."
    )
    notification_job_timeout_seconds: int = Field(
        120, ge=10, description="A notification (mail, push) job running longer is killed."
    )
    smtp_url: str = Field("", description="smtp://user:pass@host:port (smtps:// for TLS); empty writes an outbox.")
    smtp_starttls: bool = Field(False, description="Upgrade the SMTP connection with STARTTLS.")
    smtp_from: str = Field("AI-Teacher <no-reply@aiteacher.local>", description="Sender of notification mail.")
    fcm_project_id: str = Field("", description="Firebase project for push (FCM HTTP v1); empty disables push.")
    fcm_credentials_file: Path | None = Field(None, description="Service-account JSON for FCM.")
    fcm_base_url: str = Field("https://fcm.googleapis.com", description="FCM HTTP v1 endpoint (tests point it home).")
    notification_retry_intervals: list[int] = Field(
        default_factory=lambda: [10, 60, 300], description="Seconds between retries of a failed notification."
    )

    @field_validator("cors_origins", "events_buckets", mode="before")
    @classmethod
    def _split_origins(cls, value: Any) -> Any:  # also EVENTS_BUCKETS
        if isinstance(value, str) and not value.strip().startswith("["):
            return [origin.strip() for origin in value.split(",") if origin.strip()]
        return value

    @field_validator("rate_limits", mode="before")
    @classmethod
    def _unset_when_empty(cls, value: Any) -> Any:  # RATE_LIMITS= (as in .env.example) is no override
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("rate_limits")
    @classmethod
    def _check_limits(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        for function, spec in (value or {}).items():
            if not re.fullmatch(RATE_LIMIT_PATTERN, spec):
                raise ValueError(f"RATE_LIMITS[{function!r}] must be requests/seconds, e.g. 30/60")
        return value

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _split_proxies(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.strip().startswith("["):
            return [entry.strip() for entry in value.split(",") if entry.strip()]
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _check_proxies(cls, value: list[str]) -> list[str]:
        from aiteacher.proxies import parse_trusted

        parse_trusted(value)  # raises ValueError naming the bad entry
        return value

    @model_validator(mode="after")
    def _check_secrets(self) -> Settings:
        if self.jwt_algorithm == "HS256":
            weak = self.jwt_secret in INSECURE_SECRETS or len(self.jwt_secret.encode()) < MIN_SECRET_BYTES
            if weak and self.env == "production" and self.jwt_required:
                raise ValueError(
                    "JWT_SECRET is missing, a known default or shorter than 32 bytes; "
                    "set a strong secret (or AITEACHER_ENV=dev for local development)"
                )
        elif not (self.jwt_private_key_file and self.jwt_public_key_file):
            raise ValueError(f"JWT_ALGORITHM={self.jwt_algorithm} needs JWT_PRIVATE_KEY_FILE and JWT_PUBLIC_KEY_FILE")
        if self.env == "production":
            from aiteacher.security.committed import committed_secret_fields

            found = committed_secret_fields(self)
            if found:
                raise ValueError(
                    f"{', '.join(name.upper() for name in found)}: the value appears in a file committed to the "
                    "AI-Teacher repository (docker-compose.yml, .env.example, docs, stack files, infra/, "
                    "localstack/); anyone can read it. Set a secret of your own"
                )
        return self

    @classmethod
    def settings_customise_sources(
        cls, settings_cls, init_settings, env_settings, dotenv_settings, file_secret_settings
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        secrets_dir = Path(
            init_settings().get("secrets_dir") or env_settings().get("secrets_dir") or "/var/openfaas/secrets"
        )
        return init_settings, env_settings, OpenFaaSSecretsSource(settings_cls, secrets_dir)

    # --- derived values ------------------------------------------------------------------------
    @property
    def is_dev(self) -> bool:
        return self.env in ("dev", "test")

    @cached_property
    def primary_database_url(self) -> str:
        return _with_driver(self.database_url) or f"sqlite:///{(self.data_dir / 'aiteacher.db').resolve()}"

    @cached_property
    def read_database_url(self) -> str:
        return _with_driver(self.database_read_url) or self.primary_database_url

    @cached_property
    def trusted_proxy_networks(self) -> Any:
        from aiteacher.proxies import parse_trusted

        return parse_trusted(self.trusted_proxies)

    @property
    def ingested_buckets(self) -> set[str]:
        return set(self.events_buckets) or {self.s3_bucket}

    @property
    def redis_pool_size(self) -> int:
        return self.redis_max_connections or self.function_concurrency + 16

    @property
    def should_seed_demo(self) -> bool:
        return self.is_dev if self.seed_demo is None else self.seed_demo

    def rate_limit_for(self, function: str, declared: str | None = None) -> tuple[int, int]:
        """(requests, window seconds) for a function: RATE_LIMITS when set, else the function's own limit from
        stack.yml (`declared` where one process serves many functions, as the dev gateway does; RATE_LIMIT
        where the process is the function), else the default."""
        if self.rate_limits is not None:
            spec = self.rate_limits.get(function, "")
        else:
            spec = self.rate_limit if declared is None else declared
        if spec:
            requests, _, seconds = spec.partition("/")
            return int(requests), int(seconds or self.rate_limit_window_seconds)
        return self.rate_limit_requests, self.rate_limit_window_seconds

    def jwt_signing_secret(self) -> str:
        """The HS256 key; in dev without one, a random key kept under data_dir so restarts keep sessions."""
        weak = self.jwt_secret in INSECURE_SECRETS or len(self.jwt_secret.encode()) < MIN_SECRET_BYTES
        if not weak:
            return self.jwt_secret
        if self.env == "production":  # a process started with JWT_REQUIRED=false never makes up a key
            raise RuntimeError("JWT_SECRET is missing or weak: this process cannot sign or verify tokens")
        path = self.data_dir / "jwt-secret"
        if path.exists():
            return path.read_text().strip()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        generated = secrets.token_urlsafe(48)
        path.write_text(generated)
        path.chmod(0o600)
        return generated


def _with_driver(url: str) -> str:
    """PostgreSQL URLs without a driver use psycopg2 (SQLAlchemy 2.1 would pick psycopg 3)."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg2://" + url.removeprefix(prefix)
    return url


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()


def reset_caches() -> None:
    """Forget settings and every client built from them (tests and the dev server use this)."""
    get_settings.cache_clear()
    from aiteacher import registry

    registry.reset()
