-- Intent for a mount, written before the native call, after placing the job
-- in its container's order (lib/order.lua): one round trip for both.
-- KEYS: 1 mount hash, 2 container set, 3 node index, 4 BullMQ job hash, 5 container's pending zset,
--       6 node sequence counter, 7 the queue's active list
-- ARGV: 1 containerId, 2 cimPath, 3 volumeGuid, 4 volumePath, 5 flags, 6 now (ms), 7 jobId,
--       8 job key prefix, 9 pending key prefix
-- An outcome that ends the job here also gives up its place in the container's order.
-- Returns {'earlier', ids…} when earlier jobs of the container are still
-- pending (nothing written but the place: the caller waits for them and
-- comes back), {'done', resultJson} when this job already completed its effect
-- (a redelivered job), {'mine', flags} when a start-up reconcile completed
-- this job's interrupted mount, {'mounted', flags}, {'conflict', otherCimPath},
-- {'resumed'} for an entry an interrupted job left, or {'created'}.
-- The entry remembers the job that last wrote its intent (field jobId).
-- #include order.lua
local _, earlier = placeInOrder(KEYS[6], KEYS[7], ARGV[7], ARGV[8], ARGV[9], ARGV[1])
local done = redis.call('HGET', KEYS[4], 'cimqResult')
if done then
  redis.call('ZREM', KEYS[5], ARGV[7])
  return {'done', done}
end
if #earlier > 0 then return {'earlier', unpack(earlier)} end

local state = redis.call('HGET', KEYS[1], 'state')
if state == 'mounted' then
  local f = redis.call('HMGET', KEYS[1], 'flags', 'jobId')
  redis.call('ZREM', KEYS[5], ARGV[7])
  if f[2] == ARGV[7] then return {'mine', f[1]} end
  return {'mounted', f[1]}
end
if state then
  -- 'mounting' or 'unmounting' from a job that died mid-call: mount again;
  -- the processor treats ALREADY_EXISTS as success for a resumed entry.
  redis.call('HSET', KEYS[1], 'state', 'mounting', 'flags', ARGV[5], 'updatedAt', ARGV[6], 'jobId', ARGV[7])
  return {'resumed'}
end

-- One volume GUID per container: another cim of this container holds it.
-- Its cim path is the key's suffix, so no undeclared key is read.
local keyPrefixLen = #KEYS[1] - #ARGV[2]
for _, other in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  if other ~= KEYS[1] then
    redis.call('ZREM', KEYS[5], ARGV[7])
    return {'conflict', string.sub(other, keyPrefixLen + 1)}
  end
end

redis.call('HSET', KEYS[1],
  'containerId', ARGV[1], 'cimPath', ARGV[2], 'volumeGuid', ARGV[3],
  'volumePath', ARGV[4], 'flags', ARGV[5], 'state', 'mounting', 'updatedAt', ARGV[6], 'jobId', ARGV[7])
redis.call('SADD', KEYS[2], KEYS[1])
redis.call('SADD', KEYS[3], KEYS[1])
return {'created'}
