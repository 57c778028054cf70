-- release.lua: put leased jobs back, unstarted, at the front of their level's list,
-- without counting an attempt.
--
-- KEYS[1]     leased   HASH   '<lease>:<n>' -> job record '[<level>:]<id>|<attempt>|<envelope>'
-- KEYS[2]     active   ZSET   lease -> deadline
-- KEYS[3]     leases   HASH   '<lease>' -> jobs still leased under it; '<lease>:n' -> size
-- KEYS[4..13] pending  LISTs  job records waiting, of levels 0 (`pending`) to 9
-- ARGV    fields '<lease>:<n>', in the order their jobs were fetched
--
-- Returns one code per field: 1 released; 0 lease lost.
local codes, back = {}, {}
for level = 0, 9 do back[level] = {} end
for i = 1, #ARGV do
  local member = take(ARGV[i])
  if member then
    local level, record = split_level(member)
    local list = back[level]
    list[#list + 1] = record
    codes[i] = 1
  else
    codes[i] = 0
  end
end
-- Pushed last-fetched first, so the first-fetched is served first again.
local woken = false
for level = 0, 9 do
  local list = back[level]
  if #list > 0 then
    local reversed = {}
    for i = #list, 1, -1 do reversed[#reversed + 1] = list[i] end
    if level == 0 then
      push_front(KEYS[4], reversed)
    else
      for i = 1, #reversed, 4000 do
        redis.call('RPUSH', KEYS[4 + level], unpack(reversed, i, math.min(i + 3999, #reversed)))
      end
      woken = true
    end
  end
end
if woken then
  wake(KEYS[4])
end
return codes
