-- release.lua: put leased jobs back, unstarted, at the front of the queue, without
-- counting an attempt.
--
-- KEYS[1] leased   HASH  '<lease>:<n>' -> job record
-- KEYS[2] active   ZSET  lease -> deadline
-- KEYS[3] leases   HASH  '<lease>' -> jobs still leased under it; '<lease>:n' -> size
-- KEYS[4] pending  LIST  job records waiting
-- ARGV    fields '<lease>:<n>', in the order their jobs were fetched
--
-- Returns one code per field: 1 released; 0 lease lost.
local codes, back = {}, {}
for i = 1, #ARGV do
  local record = redis.call('HGET', KEYS[1], ARGV[i])
  if record then
    redis.call('HDEL', KEYS[1], ARGV[i])
    local lease = string.match(ARGV[i], '^(%d+):')
    if redis.call('HINCRBY', KEYS[3], lease, -1) <= 0 then
      redis.call('ZREM', KEYS[2], lease)
      redis.call('HDEL', KEYS[3], lease, lease .. ':n')
    end
    back[#back + 1] = record
    codes[i] = 1
  else
    codes[i] = 0
  end
end
-- Pushed last-fetched first, so the first-fetched is served first again.
for i = #back, 1, -1 do
  redis.call('RPUSH', KEYS[4], back[i])
end
return codes
