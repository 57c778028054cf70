-- reserve.lua: take job ids, for a producer that then pushes the records itself.
--
-- KEYS[1] seq  STRING  the job-id counter
-- ARGV[1] how many ids (at least 1)
--
-- Returns the first id; the caller owns first .. first + ARGV[1] - 1 (see `ids.lua`).
local n = tonumber(ARGV[1])
if not n or n < 1 or n ~= math.floor(n) then
  return redis.error_reply('reserve.lua: the count must be a whole number from 1, got ' .. tostring(ARGV[1]))
end
return take_ids(KEYS[1], n)
