-- reserve: admit one viewer of a camera for a source, or refuse with the limit that was hit.
--
-- KEYS[1]  stream:reservation:<rid>        HASH, created
-- KEYS[2]  stream:leases:source:<SOURCE>   ZSET member -> expiry ms (truth for the source)
-- KEYS[3]  stream:leases:camera:<camera>   ZSET member -> expiry ms (truth for the camera)
-- KEYS[4]  stream:leases                   ZSET member -> expiry ms (global index)
-- KEYS[5]  stream:count:<SOURCE>           STRING, set to the source's live leases
-- KEYS[6]  stream:limit:<SOURCE>           STRING, optional override of ARGV[8]
-- KEYS[7]  stream:limit:TOTAL              STRING, optional override of ARGV[9]
-- KEYS[8]  stream:metadata:<camera>        HASH, pusher state
-- KEYS[9]  stream:camera:<camera>          HASH, camera registry entry (must exist, enabled=1)
-- KEYS[10] stream:cameras:active           SET of cameras whose pusher is not IDLE
-- KEYS[11] stream:sources                  SET of sources that ever held a lease
-- ARGV[1]  clock offset ms (0 in production)
-- ARGV[2]  lease member "<rid>|<camera>|<source>"
-- ARGV[3]  camera id      ARGV[4] source      ARGV[5] user id      ARGV[6] quality
-- ARGV[7]  lease ms (> 0)
-- ARGV[8]  default source limit      ARGV[9] default TOTAL limit
-- ARGV[10] owner id of the caller (claims the pusher start)
-- ARGV[11] claim ms (how long a start claim lasts)
-- ARGV[12] hash garbage-collection slack ms (hash TTL beyond expiry)
-- ARGV[13] viewer token TTL ms (the token minted with this lease expires then)
-- Returns:
--   {'OK', expires_at_ms, source_usage, source_limit, claimed 0|1, generation, state,
--    camera name, token_expires_at_ms}
--   {'LIMIT', 'SOURCE'|'TOTAL', current, limit}
--   {'CAMERA_NOT_FOUND'} | {'CAMERA_DISABLED'} | {'EXISTS'} | {'INVALID', argument}

local offset = int_arg(ARGV[1], -1e13, 1e13)
local lease_ms = int_arg(ARGV[7], 1, 86400000)
local default_limit = int_arg(ARGV[8], 0, 1e9)
local default_total = int_arg(ARGV[9], 0, 1e9)
local claim_ms = int_arg(ARGV[11], 1, 86400000)
local gc_ms = int_arg(ARGV[12], 0, 86400000)
local token_ms = int_arg(ARGV[13], 1, 86400000)
if offset == nil then return {'INVALID', 'offset'} end
if lease_ms == nil then return {'INVALID', 'lease_ms'} end
if default_limit == nil or default_total == nil then return {'INVALID', 'limit'} end
if claim_ms == nil then return {'INVALID', 'claim_ms'} end
if gc_ms == nil then return {'INVALID', 'gc_ms'} end
if token_ms == nil then return {'INVALID', 'token_ms'} end
if #KEYS ~= 11 then return {'INVALID', 'keys'} end

local enabled = redis.call('HGET', KEYS[9], 'enabled')
if not enabled then return {'CAMERA_NOT_FOUND'} end
if enabled ~= '1' then return {'CAMERA_DISABLED'} end
if redis.call('EXISTS', KEYS[1]) == 1 then return {'EXISTS'} end

local now = now_ms(offset)
local limit = tonumber(redis.call('GET', KEYS[6])) or default_limit
local total_limit = tonumber(redis.call('GET', KEYS[7])) or default_total
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)  -- creates nothing when absent
local used = redis.call('ZCARD', KEYS[2])
-- A refusal writes nothing for a source that holds nothing: a source nobody configured
-- (limit 0) must not leave a counter behind, whatever a caller sends.
local function refuse(scope, current, cap)
  if used > 0 or redis.call('EXISTS', KEYS[5]) == 1 then redis.call('SET', KEYS[5], used) end
  return {'LIMIT', scope, current, cap}
end
if used >= limit then return refuse('SOURCE', used, limit) end
local total = live_count(KEYS[4], now)
if total >= total_limit then return refuse('TOTAL', total, total_limit) end

local member = ARGV[2]
local expires = now + lease_ms
redis.call('ZADD', KEYS[2], expires, member)
redis.call('ZADD', KEYS[3], expires, member)
redis.call('ZADD', KEYS[4], expires, member)
redis.call('HSET', KEYS[1], 'member', member, 'camera_id', ARGV[3], 'source', ARGV[4],
  'user_id', ARGV[5], 'quality', ARGV[6], 'created_at', now, 'expires_at', expires,
  'token_expires_at', now + token_ms)
redis.call('PEXPIREAT', KEYS[1], expires + gc_ms)
redis.call('SET', KEYS[5], used + 1)
redis.call('SADD', KEYS[11], ARGV[4])

-- Pusher state: the first viewer claims the start; a viewer during the drain grace cancels
-- the teardown; an abandoned claim is taken over. While a live stopper removes the old
-- container (STOPPING), the stopper itself claims the next start when it finishes
-- (pusher_stopped), so the new container is never created next to the old one.
local meta = KEYS[8]
local state = redis.call('HGET', meta, 'state') or 'IDLE'
local claimed = 0
local stopper_gone = state == 'STOPPING'
  and (tonumber(redis.call('HGET', meta, 'claim_deadline')) or 0) <= now
if state == 'IDLE' or stopper_gone then
  claim(meta, ARGV[10], now, claim_ms)
  redis.call('HSET', meta, 'active_since', now, 'source', ARGV[4], 'attempts', 0)
  redis.call('HDEL', meta, 'retry_at', 'last_error', 'container_id')
  redis.call('SADD', KEYS[10], ARGV[3])
  claimed = 1
elseif state == 'DRAINING' then
  local resume = redis.call('HGET', meta, 'resume') or 'STARTING'
  local deadline = tonumber(redis.call('HGET', meta, 'claim_deadline')) or 0
  if resume == 'STARTING' and deadline <= now then
    claim(meta, ARGV[10], now, claim_ms)
    claimed = 1
  else
    redis.call('HSET', meta, 'state', resume, 'updated_at', now)
    redis.call('HDEL', meta, 'drain_deadline', 'resume')
  end
elseif state == 'STARTING' then
  local deadline = tonumber(redis.call('HGET', meta, 'claim_deadline')) or 0
  if deadline <= now then
    claim(meta, ARGV[10], now, claim_ms)
    claimed = 1
  end
end
local gen = tonumber(redis.call('HGET', meta, 'generation')) or 0
state = redis.call('HGET', meta, 'state')
local name = redis.call('HGET', KEYS[9], 'name') or ARGV[3]
return {'OK', expires, used + 1, limit, claimed, gen, state, name, now + token_ms}
