-- The load glimpse-bench drives through wrk (--load wrk): the same page
-- views as its Go generator (payloads and load in main.go), 512 bodies
-- cycling over paths, referrers, UTM tags and screen widths, from
-- `visitors` visitors told apart by client address (X-Forwarded-For, which
-- glimpse trusts from 127.0.0.1 in the benchmark) and a browser each.
--
-- wrk -t THREADS ... -s load.lua URL -- VISITORS THREADS
-- Thread k of THREADS sends requests k, k+THREADS, k+2*THREADS, ...

local uas = {
  "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
  "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15",
  "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
  "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
  "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36",
}
local refs = { "", "https://www.google.com/", "https://news.ycombinator.com/item?id=1", "https://t.co/abc" }

local nbodies = 512
local bodies = {} -- 0-based, as the Go generator indexes them
for i = 0, nbodies - 1 do
  local url = "https://bench.example/blog/post-" .. (i % 40)
  if i % 7 == 0 then
    url = url .. "?utm_source=newsletter&utm_medium=email&utm_campaign=nov"
  end
  bodies[i] = string.format('{"n":"pageview","u":"%s","d":"bench.example","r":"%s","w":%d}',
    url, refs[i % #refs + 1], 360 + i % 1600)
end

local threads = 0
function setup(thread)
  thread:set("first", threads)
  threads = threads + 1
end

local i, step, visitors
function init(args)
  visitors = tonumber(args[1]) or 50000
  step = tonumber(args[2]) or 1
  i = (first or 0) - step
end

local headers = { ["Content-Type"] = "text/plain" }

function request()
  i = i + step
  local v = i % visitors
  headers["User-Agent"] = uas[v % #uas + 1] -- a visitor keeps its browser
  headers["X-Forwarded-For"] = string.format("81.%d.%d.%d", 2 + math.floor(v / 65536), math.floor(v / 256) % 256, v % 256)
  return wrk.format("POST", "/api/event", headers, bodies[i % nbodies])
end
