"""qm-store-redis: A Redis store for Quartermaster, on redis.asyncio."""
