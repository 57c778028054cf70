-- bury.lua: dead-letter leased jobs with a reason each.
--
-- KEYS[1] active     ZSET  id -> lease deadline
-- KEYS[2] lease      HASH  id -> fencing token
-- KEYS[3] attempts   HASH  id -> next attempt number
-- KEYS[4] jobs       HASH  id -> envelope
-- KEYS[5] dead       LIST  dead-lettered ids, newest first (bounded)
-- KEYS[6] dead_info  HASH  id -> {"reason","attempt","at"} (JSON)
-- ARGV[1] dead-letter bound; then id1, token1, reason1, id2, token2, reason2, ...
--
-- Returns one code per job: 1 dead-lettered; 0 lease lost. When the list outgrows its
-- bound the oldest entries and their envelopes are deleted.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local limit = tonumber(ARGV[1])
local n = (#ARGV - 1) / 3
local codes = {}
for i = 1, n do
  local id, token, reason = ARGV[3 * i - 1], ARGV[3 * i], ARGV[3 * i + 1]
  if redis.call('HGET', KEYS[2], id) == token then
    local attempt = tonumber(redis.call('HGET', KEYS[3], id)) or 1
    redis.call('ZREM', KEYS[1], id)
    redis.call('HDEL', KEYS[2], id)
    redis.call('HDEL', KEYS[3], id)
    redis.call('LPUSH', KEYS[5], id)
    redis.call('HSET', KEYS[6], id, cjson.encode({reason = reason, attempt = attempt, at = now}))
    codes[i] = 1
  else
    codes[i] = 0
  end
end
while redis.call('LLEN', KEYS[5]) > limit do
  local old = redis.call('RPOP', KEYS[5])
  redis.call('HDEL', KEYS[4], old)
  redis.call('HDEL', KEYS[6], old)
end
return codes
