-- wrk script replaying prepared requests. Each line of $REPLAY_FILE is "<path>\t<Authorization or ->\t<JSON body>";
-- with $REPLAY_THREADS threads, thread k takes lines k, k+n, k+2n... so no two requests repeat a body
-- until the file is used up. done() prints one JSON line of figures.
local threads = {}
local lines = {}
local position = 0

function setup(thread)
  table.insert(threads, thread)
  thread:set("index", #threads)
end

function init(args)
  local n = tonumber(os.getenv("REPLAY_THREADS"))
  local i = 0
  for line in io.lines(os.getenv("REPLAY_FILE")) do
    if i % n == index - 1 then
      table.insert(lines, line)
    end
    i = i + 1
  end
end

function request()
  position = position % #lines + 1
  local line = lines[position]
  local first = string.find(line, "\t", 1, true)
  local second = string.find(line, "\t", first + 1, true)
  local path = string.sub(line, 1, first - 1)
  local authorization = string.sub(line, first + 1, second - 1)
  local headers = {["Content-Type"] = "application/json"}
  if authorization ~= "-" then
    headers["Authorization"] = authorization
  end
  return wrk.format("POST", path, headers, string.sub(line, second + 1))
end

function done(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "non_2xx_3xx": %d, "socket_errors": %d, ' ..
    '"p50_us": %d, "p90_us": %d, "p99_us": %d}\n',
    summary.requests, summary.duration, errors.status, errors.connect + errors.read + errors.write + errors.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99)))
end
