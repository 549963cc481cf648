-- Extends the lease if this daemon still holds it; takes it again if it is
-- gone (a Redis restart without persistence); fails if another holds it.
-- KEYS: 1 lease key
-- ARGV: 1 holder JSON, 2 lease ms
local cur = redis.call('GET', KEYS[1])
if cur == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if not cur then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return cur
