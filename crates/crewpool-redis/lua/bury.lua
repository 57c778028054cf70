-- bury.lua: dead-letter leased jobs with a reason each.
--
-- KEYS[1] leased      HASH  '<lease>:<n>' -> job record '[<level>:]<id>|<attempt>|<envelope>'
-- KEYS[2] active      ZSET  lease -> deadline
-- KEYS[3] leases      HASH  '<lease>' -> jobs still leased under it; '<lease>:n' -> size
-- KEYS[4] dead        LIST  dead letters (JSON), newest first
-- KEYS[5] stats       HASH  totals: 'succeeded', 'failed', 'expired', 'missed_deadline'
-- KEYS[6] unique      HASH  uniqueness key -> job id
-- KEYS[7] unique_ttl  ZSET  uniqueness key -> when it lapses (ms)
-- ARGV[1] dead-letter bound (entries)  ARGV[2] dead-letter bound (bytes of memory);
-- ARGV[3] the total to count them in: 'failed' (a failed attempt, or a job that does
-- not decode) or 'missed_deadline' (not started by its deadline);
-- then field1, reason1, field2, reason2, ...
--
-- A dead letter is {"record":<the job record>,"attempt":n,"level":p,"reason":...,"at":ms},
-- without "attempt" when the record has no valid one, without "level" for level 0.
-- Returns one code per job: 1 dead-lettered; 0 lease lost. The list keeps the newest
-- entries within its bounds. A job's uniqueness key is released.
local now = now_ms()
local codes = {}
local n = (#ARGV - 3) / 2
for i = 1, n do
  local field, reason = ARGV[2 * i + 2], ARGV[2 * i + 3]
  local record = take(field)
  if record then
    redis.call('HINCRBY', KEYS[5], ARGV[3], 1)
    dead_letter(KEYS[4], record, reason, attempt_of(record), now)
    release_unique(record, KEYS[6], KEYS[7])
    codes[i] = 1
  else
    codes[i] = 0
  end
end
trim_dead(KEYS[4], tonumber(ARGV[1]), tonumber(ARGV[2]))
return codes
