-- Resolves an entry an interrupted job left 'mounting' or 'unmounting', from
-- what the backend says is mounted now. Only touches the entry if it is
-- still in the state the caller saw.
-- KEYS: 1 mount hash, 2 container set, 3 node index, 4 owning job's BullMQ hash
-- ARGV: 1 expected state, 2 outcome ('mounted' or 'deleted'), 3 now (ms),
--       4 unmount result JSON, recorded for an owning 'unmount' job when deleted,
--       5 the volume path, recorded for an owning 'cleanup' job when deleted
if redis.call('HGET', KEYS[1], 'state') ~= ARGV[1] then return 0 end
if ARGV[2] == 'mounted' then
  redis.call('HSET', KEYS[1], 'state', 'mounted', 'updatedAt', ARGV[3])
  if ARGV[1] == 'mounting' then redis.call('HSET', KEYS[1], 'mountedAt', ARGV[3]) end
  return 1
end
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[2], KEYS[1])
redis.call('SREM', KEYS[3], KEYS[1])
-- The interrupted job did its work: its redelivery must report it.
local owner = redis.call('HGET', KEYS[4], 'name')
if ARGV[4] ~= '' and owner == 'unmount' then
  redis.call('HSET', KEYS[4], 'cimqResult', ARGV[4])
elseif ARGV[5] ~= '' and owner == 'cleanup' then
  redis.call('HSET', KEYS[4], 'cimqDismounted', ARGV[5])
end
return 1
