-- viewer_event: apply a LiveKit participant_joined / participant_left webhook of a viewer.
-- Deduplicated by event id, order-free (see session_event in _lib.lua).
--
-- KEYS[1] stream:webhook:<event id>       KEYS[2] stream:reservation:<rid>
-- KEYS[3] stream:presence:<camera>        KEYS[4] stream:leases:source:<SOURCE>
-- KEYS[5] stream:leases:camera:<camera>   KEYS[6] stream:leases
-- ARGV[1] clock offset ms   ARGV[2] 'joined' | 'left'   ARGV[3] lease member
-- ARGV[4] reservation id    ARGV[5] participant sid     ARGV[6] session version
-- ARGV[7] 1 when a 'left' ends the viewing (not a DUPLICATE_IDENTITY replacement), else 0
-- ARGV[8] reconnect grace ms   ARGV[9] lease ms   ARGV[10] dedupe window ms   ARGV[11] gc ms
--
-- joined (newest session): the viewer counts as connected and its lease runs at least a full
--   lease from now (a page refresh rejoins and keeps its slot).
-- left (newest session): the viewer no longer counts; when it ends the viewing, the lease is
--   cut to at most the reconnect grace, so a closed browser frees its quota quickly.
-- Returns: {'OK', outcome, expires_at ms or 0} with outcome connected | disconnected | stale
--          | unknown (no live lease: a ghost) | duplicate;  {'INVALID', argument}

local offset = int_arg(ARGV[1], -1e13, 1e13)
local event = ARGV[2]
local member = ARGV[3]
local rid = ARGV[4]
local sid = token_arg(ARGV[5], 64)
local version = token_arg(ARGV[6], 96)
local ends = int_arg(ARGV[7], 0, 1)
local grace_ms = int_arg(ARGV[8], 0, 86400000)
local lease_ms = int_arg(ARGV[9], 1, 86400000)
local window_ms = int_arg(ARGV[10], 1, 86400000)
local gc_ms = int_arg(ARGV[11], 0, 86400000)
if offset == nil then return {'INVALID', 'offset'} end
if event ~= 'joined' and event ~= 'left' then return {'INVALID', 'event'} end
if token_arg(member, 200) == nil or token_arg(rid, 64) == nil then return {'INVALID', 'member'} end
if sid == nil or version == nil then return {'INVALID', 'session'} end
if ends == nil or grace_ms == nil or lease_ms == nil then return {'INVALID', 'durations'} end
if window_ms == nil or gc_ms == nil then return {'INVALID', 'window'} end
if #KEYS ~= 6 then return {'INVALID', 'keys'} end

if redis.call('EXISTS', KEYS[1]) == 1 then return {'OK', 'duplicate', 0} end
local now = now_ms(offset)
redis.call('SET', KEYS[1], 1, 'PX', window_ms)

local score = tonumber(redis.call('ZSCORE', KEYS[6], member))
if score == nil or score <= now or redis.call('HGET', KEYS[2], 'member') ~= member then
  redis.call('SREM', KEYS[3], rid)
  return {'OK', 'unknown', 0}
end

local outcome = session_event(KEYS[2], 'lk_', event, sid, version, now)
local expires = score
if outcome == 'connected' then
  redis.call('SADD', KEYS[3], rid)
  expires = math.max(score, now + lease_ms)
elseif outcome == 'disconnected' then
  redis.call('SREM', KEYS[3], rid)
  if ends == 1 then expires = math.min(score, now + grace_ms) end
end
if expires ~= score then
  set_expiry(KEYS[2], KEYS[4], KEYS[5], KEYS[6], member, expires, gc_ms)
end
return {'OK', outcome, expires}
