-- extend.lua: push the deadline of the leases this process still holds (heartbeat).
--
-- KEYS[1] active  ZSET  lease -> deadline
-- ARGV[1] lease length (ms); then the leases
--
-- Returns the leases that are gone: their jobs were taken back after they expired (or
-- every job of them was settled meanwhile, which the caller tells apart).
local t = redis.call('TIME')
local deadline = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[1])
local scores, lost = {}, {}
for i = 2, #ARGV do
  if redis.call('ZSCORE', KEYS[1], ARGV[i]) then
    scores[#scores + 1] = deadline
    scores[#scores + 1] = ARGV[i]
  else
    lost[#lost + 1] = ARGV[i]
  end
end
for i = 1, #scores, 4000 do
  redis.call('ZADD', KEYS[1], 'XX', unpack(scores, i, math.min(i + 3999, #scores)))
end
return lost
