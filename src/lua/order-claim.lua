-- Places a job in its container's durable order, with every job taken off
-- the queue before it that has no place yet; see lib/order.lua.
-- KEYS: 1 node sequence counter, 2 the queue's active list
-- ARGV: 1 jobId, 2 job key prefix (`<prefix>:{<node>}:`),
--       3 pending key prefix (`<prefix>:{<node>}:pending:`),
--       4 this job's container as the processor parsed it, or '' to read it from the payload
-- Returns {container, ids…}: the container whose order the job is in ('' for
-- none) and the earlier jobs of that container still pending.
-- #include order.lua
local container, earlier = placeInOrder(KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3], ARGV[4])
return {container, unpack(earlier)}
