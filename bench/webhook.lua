-- wrk script for bench/webhook.py: realistic Massiva inbound webhooks, each one different.
--
--   wrk -t1 -c50 -d12s --timeout 30s -s bench/webhook.lua http://127.0.0.1:PORT -- \
--       /webhooks/massiva/TOKEN/inbound get 10 5000 1
--
-- args: path, "get" or "post", window seconds, phone pool size, wrk threads, run number.
-- No (phone, linea, msg) repeats within 15 s: the service takes such a repeat for the gateway
-- retrying (dedupe_window, 10 s) and stores it once, which would blur the lost-message check.
-- Each thread draws from its own share of the phones, so threads cannot repeat each other, and
-- each run (0-9, cycling) has its own three gateway lines, so runs cannot either.
-- After `window` seconds a connection sends nothing more (delay() parks it), so every request
-- sent got its answer before wrk stops: the count of 200 `OK` answers is exact, and the
-- stored messages can be checked against it. Results go to stdout as one `BENCH_JSON {...}` line.

local ffi = require("ffi")
ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clk_id, bench_timespec *tp);
]]
local CLOCK_MONOTONIC = 1
local ts = ffi.new("bench_timespec")

local function now()
  ffi.C.clock_gettime(CLOCK_MONOTONIC, ts)
  return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9
end

-- main state: one entry per thread, read back in done()
local threads = {}
local next_id = 0

function setup(thread)
  next_id = next_id + 1
  thread:set("id", next_id)
  table.insert(threads, thread)
end

local TEXTS = {
  "horario", "Horario", "a que hora abren", "¿A qué hora cierran?", "abren el sabado?",
  "horaro", "hoario por favor", "precio cafe", "PRECIO CAFE", "precio te", "precio torta",
  "precio jugo", "precio pizza", "precio empanada", "cuanto cuesta el cafe", "precios",
  "costo del envio", "hola", "Hola", "buenas", "buenos dias", "buenas tardes", "hola quiero precio",
  "donde estan", "direccion", "¿Dónde están ubicados?", "como llego", "asesor",
  "quiero hablar con una persona", "gracias", "ok", "Mañana paso por ahí", "sí", "no",
  "¿tienen delivery?", "me interesa", "info", "Buenas noches, ¿siguen abiertos?",
}
-- handoff words move a contact to human mode for good; keep them rare, as in real traffic
local RARE = { "asesor", "quiero hablar con una persona" }
local SYLLABLES = {
  "ma", "pe", "lo", "ra", "ti", "que", "so", "ña", "ca", "fe", "do", "xu", "ber", "tal",
  "zo", "mi", "gu", "chi", "lle", "vo", "ar", "en", "os", "ji",
}

local function urlencode(s)
  return (s:gsub("[^%w%-%._~ ]", function(c)
    return string.format("%%%02X", string.byte(c))
  end):gsub(" ", "+"))
end

local function junk_word()
  local parts = {}
  for i = 1, math.random(2, 4) do
    parts[i] = SYLLABLES[math.random(#SYLLABLES)]
  end
  return table.concat(parts)
end

local function text()
  local roll = math.random()
  if roll < 0.15 then -- pure junk
    local words = {}
    for i = 1, math.random(1, 4) do
      words[i] = junk_word()
    end
    return table.concat(words, " ")
  end
  local base
  repeat
    base = TEXTS[math.random(#TEXTS)]
  until base ~= RARE[1] and base ~= RARE[2] or math.random() < 0.15
  if roll < 0.55 then -- a known phrase with a stray word or two
    base = base .. " " .. junk_word()
    if roll < 0.3 then
      base = base .. " " .. junk_word()
    end
  end
  return base
end

local FRESH = 15 -- seconds before a (phone, linea, msg) may come again

function init(args)
  path = args[1]
  post = args[2] == "post"
  window = tonumber(args[3])
  local pool = tonumber(args[4])
  nthreads = tonumber(args[5] or "1")
  local run = tonumber(args[6] or "0") % 10
  LINES = {}
  for j = 0, 2 do
    LINES[j + 1] = string.format("5841410%05d", run * 3 + j)
  end
  recent = {} -- phone index -> {n = count, [linea|msg] = time sent}
  math.randomseed(id * 104729 + os.time())
  phones = {}
  local prefixes = { "58412", "58412", "58412", "58414", "58424", "58416", "58426" }
  for i = 1, pool do
    -- the same pool in every thread and every run: 7 pseudo-random subscriber digits
    local subscriber = (i * 7919 + 1234567) % 10000000
    phones[i] = prefixes[(i % #prefixes) + 1] .. string.format("%07d", subscriber)
  end
  email = "ventas%40example.com"
  form_headers = { ["Content-Type"] = "application/x-www-form-urlencoded" }
  sent, acked, other = 0, 0, 0
  statuses = {}
  t_first, t_last, t_cut = 0, 0, 0
end

function delay()
  local t = now()
  if t_first == 0 then
    t_first = t
  end
  if t - t_first >= window then
    if t_cut == 0 then
      t_cut = t
    end
    return 3600000 -- park the connection: wrk stops before it sends again
  end
  return 0
end

local function pick_phone()
  -- this thread's phones are id, id + nthreads, id + 2 * nthreads, ...
  return math.random(0, math.floor((#phones - id) / nthreads)) * nthreads + id
end

local function fresh(index, t)
  local seen = recent[index]
  if seen == nil then
    seen = { n = 0 }
    recent[index] = seen
  elseif seen.n > 64 then -- forget what is older than FRESH
    local kept = { n = 0 }
    for key, at in pairs(seen) do
      if key ~= "n" and t - at <= FRESH then
        kept[key] = at
        kept.n = kept.n + 1
      end
    end
    seen = kept
    recent[index] = seen
  end
  local msg, line = text(), LINES[math.random(#LINES)]
  local tries = 0
  while seen[line .. "|" .. msg] and t - seen[line .. "|" .. msg] <= FRESH do
    tries = tries + 1
    if tries < 10 then
      msg, line = text(), LINES[math.random(#LINES)]
    else
      msg = msg .. " " .. junk_word()
    end
  end
  seen[line .. "|" .. msg] = t
  seen.n = seen.n + 1
  return msg, line
end

function request()
  sent = sent + 1
  local index = pick_phone()
  local msg, line = fresh(index, now())
  local fields = "msg=" .. urlencode(msg)
    .. "&phone=" .. phones[index]
    .. "&linea=" .. line
    .. "&email=" .. email
  if post then
    return wrk.format("POST", path, form_headers, fields)
  end
  return wrk.format("GET", path .. "?" .. fields)
end

function response(status, headers, body)
  local key = tostring(status)
  statuses[key] = (statuses[key] or 0) + 1
  if status == 200 and body == "OK" then
    acked = acked + 1
    t_last = now()
  else
    other = other + 1
  end
end

function done(summary, latency, requests)
  local total = { sent = 0, acked = 0, other = 0, statuses = {} }
  local first, last = math.huge, 0
  for _, thread in ipairs(threads) do
    total.sent = total.sent + thread:get("sent")
    total.acked = total.acked + thread:get("acked")
    total.other = total.other + thread:get("other")
    for code, count in pairs(thread:get("statuses")) do
      total.statuses[code] = (total.statuses[code] or 0) + count
    end
    local f, l = thread:get("t_first"), thread:get("t_last")
    if f > 0 and f < first then first = f end
    if l > last then last = l end
  end
  local parts = {}
  for code, count in pairs(total.statuses) do
    table.insert(parts, string.format('"%s": %d', code, count))
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"sent": %d, "acked": %d, "other": %d, "statuses": {%s}, '
      .. '"window": %.6f, "completed": %d, '
      .. '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, '
      .. '"latency_us": {"mean": %.1f, "stdev": %.1f, "max": %d, '
      .. '"p50": %d, "p90": %d, "p99": %d, "p999": %d}}\n',
    total.sent, total.acked, total.other, table.concat(parts, ", "),
    (last > first) and (last - first) or 0, summary.requests,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency.stdev, latency.max,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9)
  ))
end
