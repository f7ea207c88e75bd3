"""qm-store-sqlite: A durable SQLite store for Quartermaster, on aiosqlite."""
