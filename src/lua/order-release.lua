-- Gives up a job's place in its container's order: it will not run again.
-- KEYS: 1 container's pending zset
-- ARGV: 1.. jobIds
return redis.call('ZREM', KEYS[1], unpack(ARGV))
