-- release.lua: put leased jobs back, unstarted, at the front of the queue, without
-- counting an attempt.
--
-- KEYS[1] active   ZSET  id -> lease deadline
-- KEYS[2] lease    HASH  id -> fencing token
-- KEYS[3] pending  LIST  ids waiting
-- ARGV    id1, token1, id2, token2, ... in the order they were fetched
--
-- Returns one code per job: 1 released; 0 lease lost.
local n = #ARGV / 2
local ids = {}
for i = 1, n do ids[i] = ARGV[2 * i - 1] end
local current = redis.call('HMGET', KEYS[2], unpack(ids))
local back, codes = {}, {}
for i = n, 1, -1 do
  if current[i] == ARGV[2 * i] then
    back[#back + 1] = ids[i]
    codes[i] = 1
  else
    codes[i] = 0
  end
end
if #back > 0 then
  redis.call('ZREM', KEYS[1], unpack(back))
  redis.call('HDEL', KEYS[2], unpack(back))
  -- Pushed last-fetched first, so the first-fetched is served first again.
  redis.call('RPUSH', KEYS[3], unpack(back))
end
return codes
