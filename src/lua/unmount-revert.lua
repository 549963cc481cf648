-- Outcome of a failed dismount: the volume is still there, so the entry goes
-- back to 'mounted' and stays visible to path lookups and later cleanups.
-- KEYS: 1 mount hash
-- ARGV: 1 now (ms)
if redis.call('HGET', KEYS[1], 'state') ~= 'unmounting' then return 0 end
redis.call('HSET', KEYS[1], 'state', 'mounted', 'updatedAt', ARGV[1])
return 1
