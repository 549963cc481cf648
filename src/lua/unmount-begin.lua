-- Intent for an unmount, written before the native call.
-- KEYS: 1 mount hash, 2 BullMQ job hash, 3 container's pending zset
-- ARGV: 1 now (ms), 2 jobId, 3 '1' when this step ends the job on 'done' or 'missing'
--       (an unmount job; not a step of a cleanup), which then gives up its place
-- Returns {'done', resultJson}, {'missing'}, or
-- {'unmounting', volumeGuid, volumePath, previousState}.
local done = redis.call('HGET', KEYS[2], 'cimqResult')
if done then
  if ARGV[3] == '1' then redis.call('ZREM', KEYS[3], ARGV[2]) end
  return {'done', done}
end
local f = redis.call('HMGET', KEYS[1], 'state', 'volumeGuid', 'volumePath')
if not f[1] then
  if ARGV[3] == '1' then redis.call('ZREM', KEYS[3], ARGV[2]) end
  return {'missing'}
end
redis.call('HSET', KEYS[1], 'state', 'unmounting', 'updatedAt', ARGV[1], 'jobId', ARGV[2])
return {'unmounting', f[2], f[3], f[1]}
