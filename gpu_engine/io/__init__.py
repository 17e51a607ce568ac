"""Sources (files, generator), sinks (Parquet, memory, callback) and frame adapters."""
