-- Intent for an unmount, written before the native call. For an unmount job,
-- placed in its container's order first (lib/order.lua): one round trip for both.
-- KEYS: 1 mount hash, 2 BullMQ job hash, 3 container's pending zset,
--       4 node sequence counter, 5 the queue's active list
-- ARGV: 1 now (ms), 2 jobId, 3 the container when this step ends the job on 'done' or
--       'missing' (an unmount job; '' for a step of a cleanup), which then gives up its place,
--       4 job key prefix, 5 pending key prefix
-- Returns {'earlier', ids…} (an unmount job whose container has earlier jobs
-- pending: nothing written but the place), {'done', resultJson}, {'missing'},
-- or {'unmounting', volumeGuid, volumePath, previousState}.
-- #include order.lua
local endsJob = ARGV[3] ~= ''
local earlier = {}
if endsJob then
  local _
  _, earlier = placeInOrder(KEYS[4], KEYS[5], ARGV[2], ARGV[4], ARGV[5], ARGV[3])
end
local done = redis.call('HGET', KEYS[2], 'cimqResult')
if done then
  if endsJob then redis.call('ZREM', KEYS[3], ARGV[2]) end
  return {'done', done}
end
if #earlier > 0 then return {'earlier', unpack(earlier)} end
local f = redis.call('HMGET', KEYS[1], 'state', 'volumeGuid', 'volumePath')
if not f[1] then
  if endsJob then redis.call('ZREM', KEYS[3], ARGV[2]) end
  return {'missing'}
end
redis.call('HSET', KEYS[1], 'state', 'unmounting', 'updatedAt', ARGV[1], 'jobId', ARGV[2])
return {'unmounting', f[2], f[3], f[1]}
