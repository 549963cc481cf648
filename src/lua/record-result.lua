-- Records a finished job's result on its BullMQ hash (jobs whose effect
-- spans several entries, like cleanup), only while the job still exists.
-- KEYS: 1 BullMQ job hash
-- ARGV: 1 result JSON
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'cimqResult', ARGV[1])
return 1
