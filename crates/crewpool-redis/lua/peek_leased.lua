-- peek_leased.lua: list leased jobs, their leases in deadline order (reads only).
--
-- KEYS[1] leased  HASH  '<lease>:<n>' -> job record
-- KEYS[2] active  ZSET  lease -> deadline (ms, Redis clock)
-- KEYS[3] leases  HASH  '<lease>' -> jobs still leased under it; '<lease>:n' -> size;
--                       '<lease>:t' -> when it was taken (ms)
-- ARGV[1] how many leased jobs to skip  ARGV[2] how many to return at most
--
-- Returns {now (ms, Redis clock), leased jobs in all, then four values per job: its
-- field '<lease>:<n>' (the delivery's fencing token), its record, the lease's deadline,
-- when the lease was taken (-1: unknown)}.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local skip, limit = tonumber(ARGV[1]), tonumber(ARGV[2])
local out = {now, redis.call('HLEN', KEYS[1])}
local found, start = 0, 0
while found < limit do
  local leases = redis.call('ZRANGE', KEYS[2], start, start + 99, 'WITHSCORES')
  if #leases == 0 then
    break
  end
  for i = 1, #leases, 2 do
    local lease = leases[i]
    local held = tonumber(redis.call('HGET', KEYS[3], lease)) or 0
    if found >= limit then
      break
    elseif skip >= held then
      -- The whole lease is before the page.
      skip = skip - held
    else
      local size = tonumber(redis.call('HGET', KEYS[3], lease .. ':n')) or 0
      local taken = tonumber(redis.call('HGET', KEYS[3], lease .. ':t')) or -1
      local deadline = tonumber(leases[i + 1])
      local n = 1
      while n <= size and found < limit do
        local field = lease .. ':' .. n
        local record = redis.call('HGET', KEYS[1], field)
        if record then
          if skip > 0 then
            skip = skip - 1
          else
            out[#out + 1] = field
            out[#out + 1] = record
            out[#out + 1] = deadline
            out[#out + 1] = taken
            found = found + 1
          end
        end
        n = n + 1
      end
    end
  end
  start = start + 100
end
return out
