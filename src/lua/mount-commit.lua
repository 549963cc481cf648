-- Outcome of a successful mount: 'mounting' becomes 'mounted', and the job's
-- result is recorded on its BullMQ hash in the same step, so a redelivered
-- job returns it instead of acting twice.
-- The job is done: it gives up its place in the container's order too.
-- KEYS: 1 mount hash, 2 BullMQ job hash, 3 container's pending zset
-- ARGV: 1 now (ms), 2 result JSON, 3 jobId
if redis.call('HGET', KEYS[1], 'state') ~= 'mounting' then return 0 end
redis.call('HSET', KEYS[1], 'state', 'mounted', 'mountedAt', ARGV[1], 'updatedAt', ARGV[1])
if redis.call('EXISTS', KEYS[2]) == 1 then
  redis.call('HSET', KEYS[2], 'cimqResult', ARGV[2])
end
redis.call('ZREM', KEYS[3], ARGV[3])
return 1
