-- pusher_stopped: the stopper of generation G removed the container.
--
-- With no live lease the camera goes IDLE and leaves the active set. A viewer who arrived
-- while it stopped finds the stopper claiming the next start right here (one atomic step,
-- so the new container is created only after the old one is gone).
--
-- KEYS[1] stream:metadata:<camera>   KEYS[2] stream:leases:camera:<camera>
-- KEYS[3] stream:cameras:active
-- ARGV[1] clock offset ms   ARGV[2] generation   ARGV[3] owner id   ARGV[4] claim ms
-- ARGV[5] camera id
-- Returns: {'IDLE'} | {'CLAIMED', generation} | {'STALE', state, generation}
--          | {'INVALID', argument}

local offset = int_arg(ARGV[1], -1e13, 1e13)
local gen = int_arg(ARGV[2], 0, 1e15)
local claim_ms = int_arg(ARGV[4], 1, 86400000)
if offset == nil then return {'INVALID', 'offset'} end
if gen == nil then return {'INVALID', 'generation'} end
if claim_ms == nil then return {'INVALID', 'claim_ms'} end
if ARGV[3] == '' then return {'INVALID', 'owner'} end
if ARGV[5] == '' then return {'INVALID', 'camera_id'} end
if #KEYS ~= 3 then return {'INVALID', 'keys'} end

local meta = KEYS[1]
local now = now_ms(offset)
local state = redis.call('HGET', meta, 'state') or 'IDLE'
local current = tonumber(redis.call('HGET', meta, 'generation')) or 0
if state ~= 'STOPPING' or current ~= gen then return {'STALE', state, current} end
redis.call('HDEL', meta, 'container_id', 'running_since', 'retry_at', 'drain_deadline', 'resume')
if live_count(KEYS[2], now) > 0 then
  local next_gen = claim(meta, ARGV[3], now, claim_ms)
  redis.call('HSET', meta, 'attempts', 0)
  return {'CLAIMED', next_gen}
end
redis.call('HSET', meta, 'state', 'IDLE', 'attempts', 0, 'updated_at', now)
redis.call('HDEL', meta, 'owner', 'claim_deadline')
redis.call('SREM', KEYS[3], ARGV[5])
return {'IDLE'}
