-- extend.lua: push the lease deadline of jobs this process still holds (heartbeat).
--
-- KEYS[1] active  ZSET  id -> lease deadline
-- KEYS[2] lease   HASH  id -> fencing token
-- KEYS[3] jobs    HASH  id -> envelope
-- ARGV[1] lease length (ms); then id1, token1, id2, token2, ...
--
-- Returns the ids whose lease was lost: another delivery's token guards them, or they
-- have no lease but still exist (they went back to the queue). A job with neither
-- lease nor data was just acknowledged (a heartbeat racing its ack): not lost.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local deadline = now + tonumber(ARGV[1])
local n = (#ARGV - 1) / 2
local ids = {}
for i = 1, n do ids[i] = ARGV[2 * i] end
local current = redis.call('HMGET', KEYS[2], unpack(ids))
local scores, lost = {}, {}
for i = 1, n do
  if current[i] == ARGV[2 * i + 1] then
    scores[#scores + 1] = deadline
    scores[#scores + 1] = ids[i]
  elseif current[i] or redis.call('HEXISTS', KEYS[3], ids[i]) == 1 then
    lost[#lost + 1] = ids[i]
  end
end
if #scores > 0 then
  redis.call('ZADD', KEYS[1], 'XX', unpack(scores))
end
return lost
