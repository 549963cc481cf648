-- Intent for an unmount, written before the native call.
-- KEYS: 1 mount hash, 2 BullMQ job hash
-- ARGV: 1 now (ms), 2 jobId
-- Returns {'done', resultJson}, {'missing'}, or
-- {'unmounting', volumeGuid, volumePath, previousState}.
local done = redis.call('HGET', KEYS[2], 'cimqResult')
if done then return {'done', done} end
local f = redis.call('HMGET', KEYS[1], 'state', 'volumeGuid', 'volumePath')
if not f[1] then return {'missing'} end
redis.call('HSET', KEYS[1], 'state', 'unmounting', 'updatedAt', ARGV[1], 'jobId', ARGV[2])
return {'unmounting', f[2], f[3], f[1]}
