-- pusher_fence: before removing an orphan container (no viewers, camera IDLE), raise the
-- camera's generation to at least the orphan's label so the removal is fenced: a start
-- claimed after this gets a newer generation than anything the removal may touch.
--
-- KEYS[1] stream:metadata:<camera>   KEYS[2] stream:leases:camera:<camera>
-- ARGV[1] clock offset ms   ARGV[2] the orphan's generation label (0 when it has none)
-- Returns: {'OK', generation} | {'BUSY', state} | {'INVALID', argument}

local offset = int_arg(ARGV[1], -1e13, 1e13)
local label = int_arg(ARGV[2], 0, 1e15)
if offset == nil then return {'INVALID', 'offset'} end
if label == nil then return {'INVALID', 'generation'} end
if #KEYS ~= 2 then return {'INVALID', 'keys'} end

local meta = KEYS[1]
local now = now_ms(offset)
local state = redis.call('HGET', meta, 'state') or 'IDLE'
if state ~= 'IDLE' or live_count(KEYS[2], now) > 0 then return {'BUSY', state} end
local current = tonumber(redis.call('HGET', meta, 'generation')) or 0
if label > current then
  redis.call('HSET', meta, 'generation', label, 'state', 'IDLE', 'updated_at', now)
  current = label
end
return {'OK', current}
