-- Takes a place in a container's durable job order, the first time a job is
-- seen; a redelivered job keeps its place. The order survives restarts and
-- retries, so one container's jobs apply in the order they were first taken.
-- KEYS: 1 container's pending zset, 2 node sequence counter
-- ARGV: 1 jobId
-- Returns the ids of earlier jobs of the container that are still pending.
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not score then
  score = redis.call('INCR', KEYS[2])
  redis.call('ZADD', KEYS[1], score, ARGV[1])
end
return redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. score)
