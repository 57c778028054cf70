-- retry.lua: schedule a failed job's next attempt, or dead-letter it when it is out of
-- attempts.
--
-- KEYS[1] active     ZSET  id -> lease deadline
-- KEYS[2] lease      HASH  id -> fencing token
-- KEYS[3] attempts   HASH  id -> next attempt number
-- KEYS[4] delayed    ZSET  id -> due time (ms)
-- KEYS[5] pending    LIST  ids waiting
-- KEYS[6] jobs       HASH  id -> envelope
-- KEYS[7] dead       LIST  dead-lettered ids
-- KEYS[8] dead_info  HASH  id -> JSON
-- ARGV[1] id  ARGV[2] token  ARGV[3] delay (ms)  ARGV[4] reason
-- ARGV[5] max attempts (0: no limit)  ARGV[6] dead-letter bound
--
-- Returns 1 scheduled; 2 dead-lettered (out of attempts); 0 lease lost.
local id, token = ARGV[1], ARGV[2]
if redis.call('HGET', KEYS[2], id) ~= token then
  return 0
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local delay = tonumber(ARGV[3])
local max_attempts = tonumber(ARGV[5])
redis.call('ZREM', KEYS[1], id)
redis.call('HDEL', KEYS[2], id)
local attempt = tonumber(redis.call('HGET', KEYS[3], id)) or 1
if max_attempts > 0 and attempt >= max_attempts then
  redis.call('LPUSH', KEYS[7], id)
  redis.call('HSET', KEYS[8], id, cjson.encode({reason = ARGV[4], attempt = attempt, at = now}))
  redis.call('HDEL', KEYS[3], id)
  while redis.call('LLEN', KEYS[7]) > tonumber(ARGV[6]) do
    local old = redis.call('RPOP', KEYS[7])
    redis.call('HDEL', KEYS[6], old)
    redis.call('HDEL', KEYS[8], old)
  end
  return 2
end
redis.call('HSET', KEYS[3], id, attempt + 1)
if delay <= 0 then
  redis.call('LPUSH', KEYS[5], id)
else
  redis.call('ZADD', KEYS[4], now + delay, id)
end
return 1
