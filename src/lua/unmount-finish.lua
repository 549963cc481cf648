-- Outcome of a dismount (or of finding the volume already gone): the entry
-- and its index memberships go, and the job's result is recorded with them.
-- KEYS: 1 mount hash, 2 container set, 3 node index, 4 BullMQ job hash, 5 container's pending zset
-- ARGV: 1 result JSON, or '' when the caller records its result later, 2 jobId
-- With a result the job is done, and gives up its place in the container's order.
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[2], KEYS[1])
redis.call('SREM', KEYS[3], KEYS[1])
if ARGV[1] ~= '' then
  if redis.call('EXISTS', KEYS[4]) == 1 then redis.call('HSET', KEYS[4], 'cimqResult', ARGV[1]) end
  redis.call('ZREM', KEYS[5], ARGV[2])
end
return 1
