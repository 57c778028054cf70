-- bury.lua: dead-letter leased jobs with a reason each.
--
-- KEYS[1] leased  HASH  '<lease>:<n>' -> job record '<id>|<attempt>|<envelope>'
-- KEYS[2] active  ZSET  lease -> deadline
-- KEYS[3] leases  HASH  '<lease>' -> jobs still leased under it; '<lease>:n' -> size
-- KEYS[4] dead    LIST  dead letters (JSON), newest first
-- KEYS[5] stats   HASH  totals: 'succeeded', 'failed', 'expired'
-- ARGV[1] dead-letter bound (entries)  ARGV[2] dead-letter bound (bytes of memory);
-- then field1, reason1, field2, reason2, ...
--
-- A dead letter is {"record":<the job record>,"attempt":n,"reason":...,"at":ms}, without
-- "attempt" when the record has no valid one. Returns one code per job: 1
-- dead-lettered; 0 lease lost. The list keeps the newest entries within its bounds.
local now = now_ms()
local codes = {}
local n = (#ARGV - 2) / 2
for i = 1, n do
  local field, reason = ARGV[2 * i + 1], ARGV[2 * i + 2]
  local record = take(field)
  if record then
    redis.call('HINCRBY', KEYS[5], 'failed', 1)
    dead_letter(KEYS[4], record, reason, attempt_of(record), now)
    codes[i] = 1
  else
    codes[i] = 0
  end
end
trim_dead(KEYS[4], tonumber(ARGV[1]), tonumber(ARGV[2]))
return codes
