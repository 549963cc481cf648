-- The node lease: one daemon serves a node at a time.
-- KEYS: 1 lease key
-- ARGV: 1 holder JSON (with a unique token), 2 lease ms, 3 value to replace ('' = only if free)
-- Returns 1 when this holder now has the lease, else the current holder.
local cur = redis.call('GET', KEYS[1])
if (not cur) or (ARGV[3] ~= '' and cur == ARGV[3]) then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return cur
