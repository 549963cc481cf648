-- Shared by the scripts that place a job in its container's durable order
-- (included by scripts.ts where a script says `-- #include order.lua`).
-- Places follow the order in which BullMQ took jobs off the queue (the active
-- list, LPUSHed on each activation), not the order in which they reach the
-- processor, which can differ under concurrency.
--
-- Invariant: the jobs placed in their current activation form the right-hand
-- (oldest) end of the active list. Placing a job therefore places, oldest
-- first, every unplaced job between it and that end: a walk over the few
-- jobs taken since the last placement, not a scan of the whole list.
-- A job keeps its sequence number across activations (a redelivered job
-- keeps its place); it is marked placed for an activation by copying
-- BullMQ's attempts-started counter (`ats`) into `cimqAts`.
local rcall = redis.call

-- The container of a job the processor has not parsed yet. The payload is not
-- validated here: read only a sane size, take only a containerd-style id.
local function payloadContainer(jobKey)
  local name = rcall('HGET', jobKey, 'name')
  if name ~= 'mount' and name ~= 'unmount' and name ~= 'cleanup' then return '' end
  if rcall('HSTRLEN', jobKey, 'data') > 65536 then return '' end
  local ok, data = pcall(cjson.decode, rcall('HGET', jobKey, 'data') or '')
  if not ok or type(data) ~= 'table' then return '' end
  local id = data.containerId
  if type(id) ~= 'string' or #id > 76 or not string.find(id, '^%w[%w._-]*$')
    or string.find(id, '[._-][._-]') or string.find(id, '[._-]$') then
    return ''
  end
  return id
end

local function isPlaced(jobKey)
  local f = rcall('HMGET', jobKey, 'ats', 'cimqAts')
  return f[2] and (f[1] or '0') == f[2]
end

local function placeOne(jobPrefix, pendingPrefix, seqKey, id, container)
  local jobKey = jobPrefix .. id
  local f = rcall('HMGET', jobKey, 'ats', 'cimqSeq', 'cimqOrder')
  if f[2] then
    -- Placed in an earlier activation: same place. The processor's parse wins
    -- over the reading of the payload, should the two ever differ.
    if container and container ~= (f[3] or '') then
      if f[3] and f[3] ~= '' then rcall('ZREM', pendingPrefix .. f[3], id) end
      if container ~= '' then rcall('ZADD', pendingPrefix .. container, f[2], id) end
      rcall('HSET', jobKey, 'cimqOrder', container)
    end
    rcall('HSET', jobKey, 'cimqAts', f[1] or '0')
    return
  end
  container = container or payloadContainer(jobKey)
  local seq = rcall('INCR', seqKey)
  rcall('HSET', jobKey, 'cimqSeq', seq, 'cimqOrder', container, 'cimqAts', f[1] or '0')
  if container ~= '' then rcall('ZADD', pendingPrefix .. container, seq, id) end
end

-- Places job `own` (container as the processor parsed it, or '' to read it
-- from the payload) and every unplaced job taken before it. Returns the
-- container whose order the job is in ('' for none) and the earlier jobs of
-- that container still pending.
local function placeInOrder(seqKey, activeKey, own, jobPrefix, pendingPrefix, parsed)
  local ownKey = jobPrefix .. own
  local mine = parsed ~= '' and parsed or nil
  if not isPlaced(ownKey) then
    local unplaced = {}
    local pos = rcall('LPOS', activeKey, own)
    if pos then
      local i = pos + 1
      local stop = false
      while not stop do
        local chunk = rcall('LRANGE', activeKey, i, i + 15)
        if #chunk == 0 then break end
        for _, id in ipairs(chunk) do
          if isPlaced(jobPrefix .. id) then
            stop = true
            break
          end
          table.insert(unplaced, id)
        end
        i = i + 16
      end
    end
    for k = #unplaced, 1, -1 do placeOne(jobPrefix, pendingPrefix, seqKey, unplaced[k], nil) end
    placeOne(jobPrefix, pendingPrefix, seqKey, own, mine)
  elseif mine then
    placeOne(jobPrefix, pendingPrefix, seqKey, own, mine)
  end
  local f = rcall('HMGET', ownKey, 'cimqSeq', 'cimqOrder')
  local container = f[2] or ''
  if container == '' then return '', {} end
  return container, rcall('ZRANGEBYSCORE', pendingPrefix .. container, '-inf', '(' .. f[1])
end
