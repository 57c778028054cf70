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
  local record = take(ARGV[i])
  if record then
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
