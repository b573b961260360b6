-- Argo CD health check for cpworker.io/CustomActionWorker.
-- Ready=True -> Healthy; Ready=False -> Degraded with the operator's message (Suspended when the
-- reason is Paused: spec.paused stops polling on purpose); no conditions yet, an unobserved
-- spec generation, or Ready=Unknown -> Progressing.
local hs = {}

local function condition(conditions, wanted)
  for _, c in ipairs(conditions) do
    if c.type == wanted then
      return c
    end
  end
  return nil
end

local function describe(c, fallback)
  if c.message ~= nil and c.message ~= "" then
    return c.message
  end
  if c.reason ~= nil and c.reason ~= "" then
    return c.reason
  end
  return fallback
end

local status = obj.status
if status == nil or status.conditions == nil or #status.conditions == 0 then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to report the worker's conditions"
  return hs
end

local generation = obj.metadata.generation
if generation ~= nil and status.observedGeneration ~= generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to act on generation " .. tostring(generation)
  return hs
end

local ready = condition(status.conditions, "Ready")
if ready == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the Ready condition"
  return hs
end

if ready.status == "True" then
  hs.status = "Healthy"
  hs.message = describe(ready, "Ready")
elseif ready.status == "False" and ready.reason == "Paused" then
  hs.status = "Suspended"
  hs.message = describe(ready, "Paused")
elseif ready.status == "False" then
  hs.status = "Degraded"
  hs.message = describe(ready, "Not ready")
else
  hs.status = "Progressing"
  hs.message = describe(ready, "Readiness unknown")
end
return hs
