-- stats_expired: read only. The leases whose deadline passed since a stats reader's last
-- read: their cameras' counts changed though no key was written (every write is told by key
-- tracking; the passing of time is not).
--
-- KEYS[1] stream:leases
-- ARGV[1] clock offset ms   ARGV[2] since (ms, exclusive; -1: no earlier read, none asked)
-- ARGV[3] most members to answer
-- Returns {'OK', now, {member...}}: the members with since < deadline <= now
-- | {'OK', now, false}: more than ARGV[3] of them, or now before since (read every camera)
-- | {'INVALID', argument}

local offset = int_arg(ARGV[1], -1e13, 1e13)
if offset == nil then return {'INVALID', 'offset'} end
local since = int_arg(ARGV[2], -1e13, 1e16)
if since == nil then return {'INVALID', 'since'} end
local most = int_arg(ARGV[3], 1, 1e7)
if most == nil then return {'INVALID', 'most'} end
if #KEYS ~= 1 then return {'INVALID', 'keys'} end

local now = now_ms(offset)
if since < 0 then return {'OK', now, {}} end
if now < since then return {'OK', now, false} end  -- the clock went back: read all
local after = '(' .. since
local members = redis.call('ZRANGE', KEYS[1], after, now, 'BYSCORE', 'LIMIT', 0, most + 1)
if #members > most then return {'OK', now, false} end
return {'OK', now, members}
