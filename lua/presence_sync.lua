-- presence_sync: correct one camera's presence from a LiveKit ListParticipants listing
-- (webhooks can be dropped). Bounded by the listing's size.
--
-- KEYS[1] stream:presence:<camera>   KEYS[2] stream:metadata:<camera>   KEYS[3] stream:leases
-- KEYS[4 .. 3+n]   stream:reservation:<rid> of the n listed viewers (ACTIVE, viewer_<rid>)
-- KEYS[4+n .. ]    stream:reservation:<rid> of viewers recorded as present but not listed
-- ARGV[1] clock offset ms   ARGV[2] server ms taken before the listing was requested
-- ARGV[3] camera id   ARGV[4] n   ARGV[5] publisher sid ('' when not listed)
-- ARGV[6] publisher session version ('' when not listed)
-- ARGV[7 .. 6+3n]  rid, sid, version of each listed viewer (same order as the keys)
-- ARGV[7+3n .. ]   rid of each present-but-unlisted viewer (same order as the keys)
--
-- A listed viewer with a live lease of this camera joins (order-free rules, session_event);
-- one without is a ghost and is returned for removal. A present viewer missing from the
-- listing leaves, unless it was recorded after the listing started (a join racing the pass).
-- Returns: {'OK', joined, left, ghost rid...} | {'INVALID', argument}

local offset = int_arg(ARGV[1], -1e13, 1e13)
local listed_at = int_arg(ARGV[2], 0, 1e15)
local camera = token_arg(ARGV[3], 64)
local n = int_arg(ARGV[4], 0, 100000)
if offset == nil then return {'INVALID', 'offset'} end
if listed_at == nil then return {'INVALID', 'listed_at'} end
if camera == nil then return {'INVALID', 'camera'} end
if n == nil or #ARGV ~= 6 + 3 * n + (#KEYS - 3 - n) or #KEYS < 3 + n then
  return {'INVALID', 'counts'}
end
for i = 1, n do
  local base = 6 + 3 * (i - 1)
  if token_arg(ARGV[base + 1], 64) == nil or token_arg(ARGV[base + 2], 64) == nil
      or token_arg(ARGV[base + 3], 96) == nil then
    return {'INVALID', 'listed'}
  end
end
for i = 4 + n, #KEYS do
  if token_arg(ARGV[3 + 3 * n + i - n], 64) == nil then return {'INVALID', 'present'} end
end
if ARGV[5] ~= '' and (token_arg(ARGV[5], 64) == nil or token_arg(ARGV[6], 96) == nil) then
  return {'INVALID', 'publisher'}
end

local now = now_ms(offset)
local joined, left, ghosts = 0, 0, {}
for i = 1, n do
  local base = 6 + 3 * (i - 1)
  local rid, hash = ARGV[base + 1], KEYS[3 + i]
  local member = redis.call('HGET', hash, 'member')
  local score = member and tonumber(redis.call('ZSCORE', KEYS[3], member))
  if not member or string.sub(member, #rid + 2, #rid + 1 + #camera + 1) ~= camera .. '|'
      or score == nil or score <= now then
    redis.call('SREM', KEYS[1], rid)
    ghosts[#ghosts + 1] = rid
  elseif session_event(hash, 'lk_', 'joined', ARGV[base + 2], ARGV[base + 3], now)
      == 'connected' then
    if redis.call('SADD', KEYS[1], rid) == 1 then joined = joined + 1 end
  end
end
for i = 4 + n, #KEYS do
  local rid, hash = ARGV[3 + 3 * n + i - n], KEYS[i]
  local sid = redis.call('HGET', hash, 'lk_sid')
  local at = tonumber(redis.call('HGET', hash, 'lk_at')) or 0
  if not sid then
    left = left + redis.call('SREM', KEYS[1], rid)
  elseif at < listed_at then
    session_event(hash, 'lk_', 'left', sid, redis.call('HGET', hash, 'lk_hwm') or '', now)
    left = left + redis.call('SREM', KEYS[1], rid)
  end
end
if ARGV[5] ~= '' then
  session_event(KEYS[2], 'pub_', 'joined', ARGV[5], ARGV[6], now)
else
  local sid = redis.call('HGET', KEYS[2], 'pub_sid')
  local at = tonumber(redis.call('HGET', KEYS[2], 'pub_at')) or 0
  if sid and at < listed_at then
    session_event(KEYS[2], 'pub_', 'left', sid, redis.call('HGET', KEYS[2], 'pub_hwm') or '', now)
  end
end
local reply = {'OK', joined, left}
for _, rid in ipairs(ghosts) do reply[#reply + 1] = rid end
return reply
