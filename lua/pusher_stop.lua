-- pusher_stop: begin the teardown of a camera whose drain grace has passed.
--
-- DRAINING past its deadline with no live lease becomes STOPPING (same generation) with a
-- deadline of its own, so a stopper that dies is taken over. A STOPPING past its deadline
-- with no viewers is taken over the same way. A DRAINING camera that has viewers again
-- (a lease renewed in a race) resumes instead. ``force`` (the on-call reset) skips the drain
-- grace of a DRAINING camera; it never takes a STOPPING one over early.
--
-- KEYS[1] stream:metadata:<camera>   KEYS[2] stream:leases:camera:<camera>
-- ARGV[1] clock offset ms   ARGV[2] owner id   ARGV[3] stop deadline ms   ARGV[4] force 0|1
-- Returns: {'OK', generation} | {'NOT_DUE', state, due_at_ms} | {'RESUMED', state}
--          | {'INVALID', argument}

local offset = int_arg(ARGV[1], -1e13, 1e13)
local stop_ms = int_arg(ARGV[3], 1, 86400000)
local force = int_arg(ARGV[4], 0, 1)
if offset == nil then return {'INVALID', 'offset'} end
if stop_ms == nil then return {'INVALID', 'stop_ms'} end
if force == nil then return {'INVALID', 'force'} end
if ARGV[2] == '' then return {'INVALID', 'owner'} end
if #KEYS ~= 2 then return {'INVALID', 'keys'} end

local meta = KEYS[1]
local now = now_ms(offset)
local state = redis.call('HGET', meta, 'state') or 'IDLE'
local live = live_count(KEYS[2], now)
if state == 'DRAINING' then
  if live > 0 then
    local resume = redis.call('HGET', meta, 'resume') or 'STARTING'
    redis.call('HSET', meta, 'state', resume, 'updated_at', now)
    redis.call('HDEL', meta, 'drain_deadline', 'resume')
    return {'RESUMED', resume}
  end
  local due = tonumber(redis.call('HGET', meta, 'drain_deadline')) or 0
  if due > now and force == 0 then return {'NOT_DUE', state, due} end
elseif state == 'STOPPING' then
  local due = tonumber(redis.call('HGET', meta, 'claim_deadline')) or 0
  if due > now or live > 0 then return {'NOT_DUE', state, due} end
else
  return {'NOT_DUE', state, 0}
end
redis.call('HSET', meta, 'state', 'STOPPING', 'owner', ARGV[2],
  'claim_deadline', now + stop_ms, 'updated_at', now)
redis.call('HDEL', meta, 'drain_deadline', 'resume')
return {'OK', tonumber(redis.call('HGET', meta, 'generation')) or 0}
