-- Takes a job's place in its container's durable order, the first time the
-- job is seen; a redelivered job keeps its place. Places follow the order in
-- which BullMQ took the jobs off the queue (the active list), not the order
-- in which they reach the processor, which can differ under concurrency.
-- KEYS: 1 container's pending zset ('' container: mark only), 2 node sequence counter,
--       3 the queue's active list, 4 this job's BullMQ hash
-- ARGV: 1 jobId, 2 job key prefix (`<prefix>:{<node>}:`), 3 '1' to claim without
--       waiting for earlier-taken jobs
-- Returns {'wait', ids…} while jobs taken before this one have no place yet,
-- else {'ok', ids…} with the earlier jobs of the container still pending.
local seq = redis.call('HGET', KEYS[4], 'cimqSeq')
if not seq then
  if ARGV[3] ~= '1' then
    local waitFor = {}
    local after = false
    -- LPUSHed on activation: entries to the right of this job were taken before it.
    for _, id in ipairs(redis.call('LRANGE', KEYS[3], 0, -1)) do
      if after then
        if redis.call('HEXISTS', ARGV[2] .. id, 'cimqSeq') == 0 then table.insert(waitFor, id) end
      elseif id == ARGV[1] then
        after = true
      end
    end
    if #waitFor > 0 then return {'wait', unpack(waitFor)} end
  end
  seq = redis.call('INCR', KEYS[2])
  redis.call('HSET', KEYS[4], 'cimqSeq', seq)
  if string.sub(KEYS[1], -9) == ':pending:' then return {'ok'} end
  redis.call('ZADD', KEYS[1], seq, ARGV[1])
end
if string.sub(KEYS[1], -9) == ':pending:' then return {'ok'} end
local earlier = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. seq)
return {'ok', unpack(earlier)}
