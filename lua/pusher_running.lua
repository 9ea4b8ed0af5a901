-- pusher_running: the claimant of generation G has its container running.
--
-- KEYS[1] stream:metadata:<camera>
-- ARGV[1] clock offset ms   ARGV[2] generation   ARGV[3] container id
-- Returns: {'OK'} | {'STALE', state, current generation} | {'INVALID', argument}
-- STALE: the claim was taken over (a newer generation) or the camera drained and stopped.

local offset = int_arg(ARGV[1], -1e13, 1e13)
local gen = int_arg(ARGV[2], 1, 1e15)
if offset == nil then return {'INVALID', 'offset'} end
if gen == nil then return {'INVALID', 'generation'} end
if ARGV[3] == '' then return {'INVALID', 'container_id'} end
if #KEYS ~= 1 then return {'INVALID', 'keys'} end

local meta = KEYS[1]
local now = now_ms(offset)
local state = redis.call('HGET', meta, 'state') or 'IDLE'
local current = tonumber(redis.call('HGET', meta, 'generation')) or 0
if current ~= gen then return {'STALE', state, current} end
if state == 'STARTING' then
  redis.call('HSET', meta, 'state', 'RUNNING', 'container_id', ARGV[3],
    'running_since', now, 'updated_at', now)
elseif state == 'DRAINING' and redis.call('HGET', meta, 'resume') == 'STARTING' then
  redis.call('HSET', meta, 'resume', 'RUNNING', 'container_id', ARGV[3],
    'running_since', now, 'updated_at', now)
else
  return {'STALE', state, current}
end
redis.call('HDEL', meta, 'claim_deadline', 'retry_at')
return {'OK'}
