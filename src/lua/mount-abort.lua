-- Outcome of a failed mount: the intent is removed, a failed mount leaves no
-- entry. Only a 'mounting' entry is touched.
-- KEYS: 1 mount hash, 2 container set, 3 node index
if redis.call('HGET', KEYS[1], 'state') ~= 'mounting' then return 0 end
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[2], KEYS[1])
redis.call('SREM', KEYS[3], KEYS[1])
return 1
