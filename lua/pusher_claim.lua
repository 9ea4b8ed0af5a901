-- pusher_claim: take the start of a camera's pusher when one is due and viewers wait.
--
-- Due means: IDLE (a camera with viewers but no pusher), FAILED whose retry time has come,
-- or STARTING/STOPPING whose claim deadline passed (the claimant or stopper is gone).
--
-- KEYS[1] stream:metadata:<camera>   KEYS[2] stream:leases:camera:<camera>
-- KEYS[3] stream:cameras:active
-- ARGV[1] clock offset ms   ARGV[2] owner id   ARGV[3] claim ms   ARGV[4] camera id
-- Returns: {'OK', generation} | {'NO_VIEWERS', state} | {'NOT_DUE', state, due_at_ms}
--          | {'INVALID', argument}

local offset = int_arg(ARGV[1], -1e13, 1e13)
local claim_ms = int_arg(ARGV[3], 1, 86400000)
if offset == nil then return {'INVALID', 'offset'} end
if claim_ms == nil then return {'INVALID', 'claim_ms'} end
if ARGV[2] == '' then return {'INVALID', 'owner'} end
if ARGV[4] == '' then return {'INVALID', 'camera_id'} end
if #KEYS ~= 3 then return {'INVALID', 'keys'} end

local meta = KEYS[1]
local now = now_ms(offset)
local state = redis.call('HGET', meta, 'state') or 'IDLE'
if live_count(KEYS[2], now) == 0 then return {'NO_VIEWERS', state} end

local due_at = 0
if state == 'FAILED' then
  due_at = tonumber(redis.call('HGET', meta, 'retry_at')) or 0
elseif state == 'STARTING' or state == 'STOPPING' then
  due_at = tonumber(redis.call('HGET', meta, 'claim_deadline')) or 0
elseif state ~= 'IDLE' then
  return {'NOT_DUE', state, 0}
end
if due_at > now then return {'NOT_DUE', state, due_at} end

local gen = claim(meta, ARGV[2], now, claim_ms)
if state == 'IDLE' then
  redis.call('HSET', meta, 'active_since', now, 'attempts', 0)
  redis.call('HDEL', meta, 'retry_at', 'last_error', 'container_id')
  redis.call('SADD', KEYS[3], ARGV[4])
end
return {'OK', gen}
