-- ack.lua: forget finished jobs, each only if its fencing token still matches.
--
-- KEYS[1] active    ZSET  id -> lease deadline
-- KEYS[2] lease     HASH  id -> fencing token
-- KEYS[3] jobs      HASH  id -> envelope
-- KEYS[4] attempts  HASH  id -> next attempt number
-- ARGV    id1, token1, id2, token2, ...
--
-- Returns one code per job: 1 acknowledged; 0 lease lost (another delivery holds it,
-- or it went back to the queue); 2 gone (no lease and no data: already acknowledged,
-- by this delivery's earlier, unanswered call or by another worker).
local n = #ARGV / 2
local ids = {}
for i = 1, n do ids[i] = ARGV[2 * i - 1] end
local current = redis.call('HMGET', KEYS[2], unpack(ids))
local done, codes = {}, {}
for i = 1, n do
  if current[i] == ARGV[2 * i] then
    done[#done + 1] = ids[i]
    codes[i] = 1
  elseif not current[i] and redis.call('HEXISTS', KEYS[3], ids[i]) == 0 then
    codes[i] = 2
  else
    codes[i] = 0
  end
end
if #done > 0 then
  redis.call('ZREM', KEYS[1], unpack(done))
  redis.call('HDEL', KEYS[2], unpack(done))
  redis.call('HDEL', KEYS[3], unpack(done))
  redis.call('HDEL', KEYS[4], unpack(done))
end
return codes
