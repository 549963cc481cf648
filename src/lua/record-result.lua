-- Records a finished job's result on its BullMQ hash (jobs whose effect
-- spans several entries, like cleanup), only while the job still exists.
-- The job is done: it gives up its place in its container's order too.
-- KEYS: 1 BullMQ job hash, 2 container's pending zset (or any key of the node)
-- ARGV: 1 result JSON, 2 jobId
redis.call('ZREM', KEYS[2], ARGV[2])
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'cimqResult', ARGV[1])
return 1
