"""The one exception tree of remem.

Every error remem raises on purpose is a :class:`RememError`. Subclasses carry the context a caller needs to
recover (the offending value, the raw LLM output, the line of an import file) instead of a bare message, so that
the CLI, REST and MCP edges can translate them without parsing strings.
"""

from __future__ import annotations

from typing import Any


class RememError(Exception):
    """Root of every error remem raises on purpose.

    ``code`` is a short stable identifier used by the REST/MCP edges; ``context`` holds structured details.
    """

    code = "remem_error"

    def __init__(self, message: str, **context: Any) -> None:
        super().__init__(message)
        self.message = message
        self.context: dict[str, Any] = context

    def __str__(self) -> str:
        return self.message


class ValidationError(RememError, ValueError):
    """Input rejected before anything was written (empty text, bad user id, oversized input...)."""

    code = "invalid_input"


class InvalidUserIdError(ValidationError):
    """A user id that is empty, too long or uses characters outside the allowed set."""

    code = "invalid_user_id"


class NotFoundError(RememError, LookupError):
    """A memory id that does not exist for this user (ids of other users are reported the same way)."""

    code = "not_found"


class ConfigurationError(RememError):
    """remem was configured in a way that cannot work (unknown provider, dimension mismatch, missing extra)."""

    code = "configuration_error"


class ProviderNotFoundError(ConfigurationError):
    """A ``provider:model`` string names a provider that is not registered."""

    code = "provider_not_found"


class StoreError(RememError):
    """The vector store failed or is unusable."""

    code = "store_error"


class StoreLockedError(StoreError):
    """Another process holds the embedded store's data directory (one process per directory)."""

    code = "store_locked"


class EmbeddingError(RememError):
    """The embedder failed (model file corrupt, remote API error, wrong dimension)."""

    code = "embedding_error"


class ImportFormatError(ValidationError):
    """An import file is not valid UTF-8 JSONL in remem's export format; ``line`` says where."""

    code = "import_format"


class LLMError(RememError):
    """An LLM call failed or returned output that could not be used. ``raw_output`` keeps what it said."""

    code = "llm_error"

    def __init__(self, message: str, *, raw_output: str | None = None, **context: Any) -> None:
        super().__init__(message, raw_output=raw_output, **context)
        self.raw_output = raw_output


class ExtractionError(LLMError):
    """Fact extraction failed after its retries; the input messages stay in the pending queue."""

    code = "extraction_error"


class MaintenanceError(LLMError):
    """The maintenance agent failed after its retries; the input messages stay in the pending queue."""

    code = "maintenance_error"


class BudgetExceededError(LLMError):
    """The LM budget of one add (calls or tokens, see :class:`remem.pipeline.budget.LMBudget`) is spent: no
    further LM call is made for it. The pipeline handles it by its documented rule (facts not yet handled by
    the agent are added as they are); it reaches a caller only from code that runs outside the pipeline."""

    code = "lm_budget_exceeded"


class AuthError(RememError):
    """Missing or wrong credentials (REST/MCP edges)."""

    code = "unauthorized"


class ForbiddenError(RememError):
    """Credentials are valid but do not grant access to this tenant or user."""

    code = "forbidden"


class MarkdownFormatError(ValidationError):
    """A user's Markdown memory file that remem cannot read (damaged id comment, duplicated id, wrong encoding…).
    ``problems`` lists ``path:line: message`` for each; the memories keep their last good state meanwhile."""

    code = "markdown_format"


class MarkdownConflictError(StoreError):
    """A write would overwrite a Markdown file that changed on disk and could not be applied yet (a file remem
    cannot read, see ``problems``); nothing was written. Fix the file, then retry."""

    code = "markdown_conflict"
