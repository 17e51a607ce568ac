"""Exception types with messages that say what went wrong and where."""

from __future__ import annotations


class EngineError(Exception):
    """Base class of every error the engine raises on purpose."""


class ConfigError(EngineError, ValueError):
    """A configuration file or object is invalid; the message names the path in it."""


class SchemaError(EngineError, ValueError):
    """An input batch cannot be read against the schema (missing or uncastable column)."""


class BackendUnavailableError(EngineError, RuntimeError):
    """The requested backend cannot run here; the message says what is missing."""


class InputError(EngineError, ValueError):
    """An input file or object cannot be read; the message names the file."""


class DeviceMemoryError(EngineError, MemoryError):
    """Window state would exceed the configured device memory limit."""
