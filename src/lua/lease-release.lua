-- Gives the lease up on a clean shutdown, only if this daemon holds it.
-- KEYS: 1 lease key
-- ARGV: 1 holder JSON
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
