-- Shared helpers. orchestrator/store/scripts.py prepends this file to every script, so each
-- script stays one self-contained EVAL body. Helpers only touch keys their caller passed in.
--
-- Time: every script reads the server clock (TIME) so that replicas agree; ARGV carries a
-- clock offset in ms that is always 0 in production and lets tests move time forward.

local function now_ms(offset)
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + offset
end

-- An integer argument in [lo, hi], or nil.
local function int_arg(value, lo, hi)
  local n = tonumber(value)
  if n == nil or n ~= math.floor(n) or n < lo or n > hi then
    return nil
  end
  return n
end

local function live_count(zset, now)
  return redis.call('ZCOUNT', zset, '(' .. now, '+inf')
end

-- Drop a source's expired leases from its set and make its counter equal the rest.
local function recount(source_zset, count_key, now)
  redis.call('ZREMRANGEBYSCORE', source_zset, '-inf', now)
  local n = redis.call('ZCARD', source_zset)
  redis.call('SET', count_key, n)
  return n
end

-- Remove one lease from its three sets and delete its hash.
local function drop_lease(hash, source_zset, camera_zset, all_zset, member)
  redis.call('ZREM', source_zset, member)
  redis.call('ZREM', camera_zset, member)
  redis.call('ZREM', all_zset, member)
  redis.call('DEL', hash)
end

-- The camera lost its last live lease: a running (or starting, or failed) pusher drains.
-- Returns 1 when the state changed.
local function drain(meta, now, grace_ms)
  local state = redis.call('HGET', meta, 'state')
  if state == 'STARTING' or state == 'RUNNING' or state == 'FAILED' then
    redis.call('HSET', meta, 'state', 'DRAINING', 'resume', state,
      'drain_deadline', now + grace_ms, 'updated_at', now)
    return 1
  end
  return 0
end

-- Take the start of a camera's pusher: a new generation (fencing token) and a claim that
-- always expires. Returns the new generation.
local function claim(meta, owner, now, claim_ms)
  local gen = redis.call('HINCRBY', meta, 'generation', 1)
  redis.call('HSET', meta, 'state', 'STARTING', 'owner', owner,
    'claim_deadline', now + claim_ms, 'updated_at', now)
  redis.call('HDEL', meta, 'drain_deadline', 'resume')
  return gen
end


-- Order-free presence of one identity's LiveKit sessions (webhooks are duplicated, dropped
-- and reordered). A session is (sid, version) with version = zero-padded joined_at_ms .. '|'
-- .. sid, so versions compare as strings. Fields of `hash` under prefix `p`:
--   p..'sid'  the connected session      p..'hwm'  the newest version seen in any event
--   p..'gone' the last sids that left    p..'at'   when p..'sid' was recorded (server ms)
-- The result depends only on the set of events seen, never on their order: the newest session
-- is connected iff it joined and has not left; an older session can neither join nor leave
-- once a newer one was seen. Returns 'connected', 'disconnected' or 'stale'.
local GONE_KEEP = 8

local function session_event(hash, p, event, sid, version, now)
  local gone = redis.call('HGET', hash, p .. 'gone') or ''
  local left_before = string.find(' ' .. gone .. ' ', ' ' .. sid .. ' ', 1, true) ~= nil
  local hwm = redis.call('HGET', hash, p .. 'hwm') or ''
  if event == 'joined' then
    if left_before or version < hwm then return 'stale' end
    redis.call('HSET', hash, p .. 'sid', sid, p .. 'hwm', version, p .. 'at', now)
    return 'connected'
  end
  if not left_before then
    local list = {}
    for s in string.gmatch(gone, '%S+') do list[#list + 1] = s end
    list[#list + 1] = sid
    while #list > GONE_KEEP do table.remove(list, 1) end
    redis.call('HSET', hash, p .. 'gone', table.concat(list, ' '))
  end
  if version >= hwm then
    redis.call('HSET', hash, p .. 'hwm', version)
    redis.call('HDEL', hash, p .. 'sid', p .. 'at')
    return 'disconnected'
  end
  return 'stale'
end

-- A session id or version argument: bounded, no spaces (they separate p..'gone').
local function token_arg(value, max_len)
  if type(value) ~= 'string' or #value == 0 or #value > max_len or string.find(value, '%s') then
    return nil
  end
  return value
end

-- Move one lease to a new expiry in its three sets and its hash.
local function set_expiry(hash, source_zset, camera_zset, all_zset, member, expires, gc_ms)
  redis.call('ZADD', source_zset, 'XX', expires, member)
  redis.call('ZADD', camera_zset, 'XX', expires, member)
  redis.call('ZADD', all_zset, 'XX', expires, member)
  redis.call('HSET', hash, 'expires_at', expires)
  redis.call('PEXPIREAT', hash, expires + gc_ms)
end
