-- publisher_event: apply a participant_joined / participant_left webhook of a camera's
-- ingress participant (camera_<id>_publisher, kind INGRESS). Deduplicated, order-free.
--
-- KEYS[1] stream:webhook:<event id>   KEYS[2] stream:metadata:<camera>
-- ARGV[1] clock offset ms   ARGV[2] 'joined' | 'left'   ARGV[3] participant sid
-- ARGV[4] session version   ARGV[5] dedupe window ms
-- Returns: {'OK', outcome} with outcome connected | disconnected | stale | duplicate
--          | {'INVALID', argument}

local offset = int_arg(ARGV[1], -1e13, 1e13)
local event = ARGV[2]
local sid = token_arg(ARGV[3], 64)
local version = token_arg(ARGV[4], 96)
local window_ms = int_arg(ARGV[5], 1, 86400000)
if offset == nil then return {'INVALID', 'offset'} end
if event ~= 'joined' and event ~= 'left' then return {'INVALID', 'event'} end
if sid == nil or version == nil then return {'INVALID', 'session'} end
if window_ms == nil then return {'INVALID', 'window'} end
if #KEYS ~= 2 then return {'INVALID', 'keys'} end

if redis.call('EXISTS', KEYS[1]) == 1 then return {'OK', 'duplicate'} end
local now = now_ms(offset)
redis.call('SET', KEYS[1], 1, 'PX', window_ms)
return {'OK', session_event(KEYS[2], 'pub_', event, sid, version, now)}
